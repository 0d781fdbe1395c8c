// The request body as text, never more than the limit. A declared length is
// checked before anything is read; a chunked body is counted as it streams.
// Hono's bodyLimit middleware does the same but touches `Request.body` on
// every request, which makes @hono/node-server build a full WHATWG Request
// and stream (about a tenth of the gateway's CPU per request): here the body
// is read through `arrayBuffer()`, which the adapter serves straight from the
// socket. Bytes that are not UTF-8 are refused (22021), as PostgreSQL refuses
// them, rather than read as U+FFFD and sent on changed.
import type { HonoRequest } from "hono";
import { GatewayError, gatewayError, SQLSTATE } from "../errors.ts";
import { joinBytes } from "../wire/protocol.ts";

const tooLarge = (max: number): GatewayError => gatewayError(SQLSTATE.programLimitExceeded, `request body exceeds ${max} bytes`);
const utf8 = new TextDecoder("utf-8", { fatal: true });

function decode(bytes: Uint8Array | ArrayBuffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw gatewayError(SQLSTATE.characterNotInRepertoire, "the request body is not valid UTF-8", { hint: "Send JSON encoded as UTF-8." });
  }
}

export async function readBodyText(req: HonoRequest, max: number): Promise<string> {
  const declared = req.header("content-length");
  if (declared !== undefined && req.header("transfer-encoding") === undefined) {
    // The HTTP parser holds the body to its declared length; only the declaration needs checking.
    if (!/^\d+$/.test(declared)) throw gatewayError(SQLSTATE.protocolViolation, "invalid Content-Length header");
    if (Number(declared) > max) throw tooLarge(max);
    return decode(await req.arrayBuffer());
  }
  const body = req.raw.body;
  if (!body) return "";
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      // Stop reading; the rest of the upload is discarded with the connection's request.
      void reader.cancel().catch(() => {});
      throw tooLarge(max);
    }
    chunks.push(value);
  }
  return decode(joinBytes(chunks));
}
