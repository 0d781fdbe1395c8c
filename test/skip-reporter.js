// A node:test reporter that writes one JSON line per skipped test or suite,
// for test/run.js to count and list. It exists because Node 20's summary
// counts skipped tests only: a skipped describe() never registers its tests,
// so a whole missing prerequisite showed as "skipped 0".
//
// Events of one file arrive in order, a parent's test:start before its
// children's, so a stack per file gives each skip its full name.

/** @param {AsyncIterable<{ type: string, data: any }>} source */
export default async function* skipReporter(source) {
  /** @type {Map<string, string[]>} */
  const stacks = new Map();
  for await (const { type, data } of source) {
    if (type !== "test:start" && type !== "test:pass" && type !== "test:fail") continue;
    const file = data.file ?? "";
    const stack = (stacks.get(file) ?? []).slice(0, data.nesting);
    if (type === "test:start") {
      stacks.set(file, [...stack, data.name]);
      continue;
    }
    if (data.skip === undefined || data.skip === false) continue;
    yield JSON.stringify({
      file,
      name: [...stack, data.name].join(" › "),
      suite: data.details?.type === "suite",
      reason: typeof data.skip === "string" && data.skip !== "" ? data.skip : "(no reason given)",
    }) + "\n";
  }
}
