// Browser safety: what keeps a web page the user happens to visit from using
// the gateway through the user's browser (and so from the user's address,
// which `trust` lines may believe). Checked before any authentication or body
// reading:
//
// - Content-Type: JSON only, so a browser cannot send a request body without
//   a CORS preflight (text/plain, forms and multipart are "simple" requests).
import { gatewayError, SQLSTATE } from "../errors.ts";

/**
 * Refuses, by throwing, a body whose Content-Type is not one of `accepted`
 * (parameters other than a UTF-8 charset are ignored; JSON is UTF-8).
 */
export function requireContentType(value: string | undefined, accepted: readonly string[]): void {
  const expected = accepted.join(" or ");
  if (value === undefined) throw unsupported("missing Content-Type", expected);
  const [type = "", ...params] = value.split(";");
  if (!accepted.includes(type.trim().toLowerCase())) throw unsupported(`unsupported Content-Type "${value}"`, expected);
  for (const p of params) {
    const [k = "", v = ""] = p.split("=");
    if (k.trim().toLowerCase() === "charset" && v.trim().replace(/^"(.*)"$/, "$1").toLowerCase() !== "utf-8") {
      throw unsupported(`unsupported charset in Content-Type "${value}"`, `${expected} in UTF-8`);
    }
  }
}

const unsupported = (message: string, expected: string) =>
  gatewayError(SQLSTATE.badCopyFileFormat, `${message}: the request body must be ${expected}`, {
    hint: "Send Content-Type: application/json.",
  });
