// HBAGATE_CONFIG on Lambda (a red team found it silently ignored there: every
// setting in the file dropped, the brute-force brake's included). The file is
// read as on the Node server, and its values override Lambda's own defaults;
// the environment overrides both.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { before, describe, test } from "node:test";
import { LAMBDA_MAX_RESPONSE_BYTES, loadLambdaSettings } from "../../lib/config/settings.ts";
import { buildHandler, errorOf, functionUrlEvent, importHandler, type Handler } from "./events.ts";
import { basic } from "../harness/http.ts";

describe("HBAGATE_CONFIG on Lambda", () => {
  let handler: Handler;
  const consoleLog = console.log;

  before(async () => {
    const bundle = await buildHandler();
    const dir = dirname(bundle);
    const hba = join(dir, "pg_hba.conf");
    writeFileSync(hba, "hostssl all alice 0.0.0.0/0 md5\n");
    const verifiers = join(dir, "userlist.txt");
    writeFileSync(verifiers, `"alice" "md5${createHash("md5").update("right-alicealice").digest("hex")}"\n`);
    const config = join(dir, "hbagate.json");
    // The operator's brake and a typo: the typo would stop the start if the file were read.
    writeFileSync(config, JSON.stringify({ HBAGATE_AUTH_LOCK_AFTER: 2, HBAGATE_AUTH_SLOW_AFTER: 100, HBAGATE_VERIFIER_FILE: verifiers }));
    Object.assign(process.env, {
      HBAGATE_CONFIG: config,
      HBAGATE_HBA_FILE: hba,
      HBAGATE_VERIFIER_FILE: verifiers,
      HBAGATE_UPSTREAM_HOST: "127.0.0.1",
      HBAGATE_UPSTREAM_PORT: "1",
      HBAGATE_UPSTREAM_SSL: "disable",
    });
    console.log = () => {};
    try {
      handler = await importHandler(bundle);
    } finally {
      console.log = consoleLog;
    }
  });

  test("HBAGATE_AUTH_LOCK_AFTER=2 from the file: the third guess is locked out", async () => {
    const guess = async (password: string) => {
      const r = await handler(functionUrlEvent({ query: "select 1" }, { headers: { authorization: basic("alice", password) } }));
      return `${r.statusCode} ${errorOf(r)?.code}`;
    };
    const answers = [await guess("wrong-1"), await guess("wrong-2"), await guess("wrong-3")];
    assert.equal(answers[2], "429 08004", answers.join(", "));
  });

  test("precedence: the environment over the file over Lambda's defaults; a bad key in the file is an error, not ignored", () => {
    const file = (json: object) => () => JSON.stringify(json);
    const env = { HBAGATE_CONFIG: "/bundle/hbagate.json" };
    assert.equal(loadLambdaSettings(env, file({ HBAGATE_MAX_RESPONSE_BYTES: 1000 })).HBAGATE_MAX_RESPONSE_BYTES, 1000);
    assert.equal(loadLambdaSettings({ ...env, HBAGATE_MAX_RESPONSE_BYTES: "2000" }, file({ HBAGATE_MAX_RESPONSE_BYTES: 1000 })).HBAGATE_MAX_RESPONSE_BYTES, 2000);
    assert.equal(loadLambdaSettings(env, file({})).HBAGATE_MAX_RESPONSE_BYTES, LAMBDA_MAX_RESPONSE_BYTES);
    assert.throws(() => loadLambdaSettings(env, file({ HBAGATE_AUTH_LOCK_AFTR: 2 })), /HBAGATE_AUTH_LOCK_AFTR/);
    // An entry point that cannot read files says so rather than dropping the file.
    assert.throws(() => loadLambdaSettings(env), /HBAGATE_CONFIG="\/bundle\/hbagate.json": this entry point reads no configuration file/);
  });
});
