// A client certificate a TLS-terminating proxy forwards in a header: Envoy's
// X-Forwarded-Client-Cert (its Cert="…" field, URL-encoded PEM; the last
// element, the one the nearest proxy added), ALB's X-Amzn-Mtls-Clientcert and
// nginx's $ssl_client_escaped_cert (URL-encoded PEM), Traefik's
// X-Forwarded-Tls-Client-Cert (base64 DER). Only the encoding is read here;
// the certificate is then verified against the CA like any other, so a lax
// reading of the wrapping admits nothing the CA did not sign.
import { X509Certificate } from "node:crypto";

export const ENVOY_XFCC = "x-forwarded-client-cert";

/** Split at `sep` outside double quotes (XFCC quotes values holding , ; =). */
function splitOutsideQuotes(text: string, sep: string): string[] {
  const out: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "\\" && quoted) i++;
    else if (ch === '"') quoted = !quoted;
    else if (ch === sep && !quoted) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) throw new Error("unterminated quoted value");
  out.push(text.slice(start));
  return out;
}

function unquote(value: string): string {
  const v = value.trim();
  return v.startsWith('"') && v.endsWith('"') && v.length >= 2 ? v.slice(1, -1).replace(/\\(.)/g, "$1") : v;
}

/** Envoy's XFCC: the Cert field of the last element. */
function xfccCert(value: string): string {
  const elements = splitOutsideQuotes(value, ",");
  const last = elements[elements.length - 1]!;
  for (const pair of splitOutsideQuotes(last, ";")) {
    const eq = pair.indexOf("=");
    if (eq > 0 && pair.slice(0, eq).trim().toLowerCase() === "cert") return unquote(pair.slice(eq + 1));
  }
  throw new Error("no Cert field (set Envoy's forward_client_cert_details and set_current_client_cert_details: cert: true)");
}

/**
 * The DER of the one certificate in a PEM text (line breaks may have become
 * spaces), or of bare base64. Two certificates — a header sent twice and
 * joined, a proxy that appends — are refused: which one the proxy verified
 * cannot be told.
 */
function derOf(text: string): Buffer {
  const pems = [...text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)];
  if (pems.length > 1) throw new Error("more than one certificate (the proxy must overwrite the header, never append to it)");
  const pem = pems[0];
  // A header sent twice arrives joined by ", ": nothing in base64 has a comma.
  if (!pem && text.includes(",")) throw new Error("more than one value (the proxy must overwrite the header, never append to it)");
  const body = (pem ? pem[1]! : text).replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]+=*$/.test(body)) throw new Error("not a PEM or base64 certificate");
  return Buffer.from(body, "base64");
}

/** The certificate a header value carries; throws an Error saying what is wrong with the value. */
export function certificateFromHeader(name: string, value: string): X509Certificate {
  let text = name.toLowerCase() === ENVOY_XFCC ? xfccCert(value) : value.trim();
  if (text.includes("%")) {
    try {
      text = decodeURIComponent(text);
    } catch {
      throw new Error("invalid URL encoding");
    }
  }
  try {
    return new X509Certificate(derOf(text));
  } catch (err) {
    throw new Error(`not a certificate (${(err as Error).message})`);
  }
}
