// The benchmark's OAuth issuer in a process of its own: the benchmark process
// waits synchronously for each load run, and an issuer inside it could not
// answer the gateway's key fetch meanwhile. Prints {url, caFile, token} once
// ready (tokens for the claims in argv[2], one per subject in argv[3]) and
// serves until killed.
import { startIssuer } from "../test/harness/oauth-issuer.ts";

const issuer = await startIssuer();
const claims = JSON.parse(process.argv[2] ?? "{}") as Record<string, unknown>;
const subjects = JSON.parse(process.argv[3] ?? "[]") as string[];
const tokens = await Promise.all(subjects.map((sub) => issuer.sign({ ...claims, sub })));
process.stdout.write(JSON.stringify({ url: issuer.url, caFile: issuer.caFile, tokens }) + "\n");
process.on("SIGTERM", () => void issuer.stop().then(() => process.exit(0)));
