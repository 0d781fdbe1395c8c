// Microseconds per call of an in-process step: the median of batches of about
// 50 ms each after a warm-up, so one collection or recompilation inside a
// batch does not become the figure (a fixed 200 hba decisions at 10,000
// rules once read 62 µs for about 1).
export async function microsPerCall(f: () => unknown): Promise<number> {
  const batch = async (): Promise<number> => {
    let calls = 0;
    const t = process.hrtime.bigint();
    const until = t + 50_000_000n;
    let now = t;
    while (now < until) {
      for (let i = 0; i < 100; i++) await f();
      calls += 100;
      now = process.hrtime.bigint();
    }
    return Number(now - t) / 1000 / calls;
  };
  for (let i = 0; i < 4; i++) await batch();
  const batches: number[] = [];
  for (let i = 0; i < 9; i++) batches.push(await batch());
  return batches.sort((a, b) => a - b)[4]!;
}
