// The benchmark's OAuth issuer in a process of its own: the benchmark process
// waits synchronously for each load run, and an issuer inside it could not
// answer the gateway's key fetch meanwhile. Prints {url, caFile, token} once
// ready (the token for the claims in argv[2]) and serves until killed.
import { startIssuer } from "../test/harness/oauth-issuer.ts";

const issuer = await startIssuer();
const token = await issuer.sign(JSON.parse(process.argv[2] ?? "{}") as Record<string, unknown>);
process.stdout.write(JSON.stringify({ url: issuer.url, caFile: issuer.caFile, token }) + "\n");
process.on("SIGTERM", () => void issuer.stop().then(() => process.exit(0)));
