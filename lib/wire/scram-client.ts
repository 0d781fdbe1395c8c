// The client side of SCRAM-SHA-256 (RFC 5802/7677, without channel binding),
// for the gateway's own login to the upstream on a session's dedicated
// connection. The server's final signature is checked: a server that does not
// know the password is not logged in to.
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { constantTimeEqual, saltedPassword, scramInput } from "../auth/verify-password.ts";

const utf8 = new TextEncoder();

const base64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

const refused = (why: string) => new Error(`SCRAM exchange with the upstream failed: ${why}`);

export class ScramClient {
  private readonly nonce: string;
  private readonly clientFirstBare: string;
  private serverSignature: Uint8Array | undefined;

  constructor(private readonly password: string) {
    this.nonce = base64(crypto.getRandomValues(new Uint8Array(18)));
    // PostgreSQL takes the user from the startup packet and ignores this one.
    this.clientFirstBare = `n=,r=${this.nonce}`;
  }

  /** SASLInitialResponse's data: no channel binding ("n,,"). */
  first(): Uint8Array {
    return utf8.encode(`n,,${this.clientFirstBare}`);
  }

  /** SASLResponse's data, from the server-first-message. */
  async final(serverFirst: string): Promise<Uint8Array> {
    const attrs = new Map(serverFirst.split(",").map((part) => [part.slice(0, 1), part.slice(2)] as const));
    const serverNonce = attrs.get("r");
    const salt = attrs.get("s");
    const iterations = Number(attrs.get("i"));
    if (!serverNonce || !serverNonce.startsWith(this.nonce) || serverNonce.length === this.nonce.length) throw refused("the server's nonce does not extend ours");
    if (!salt || !Number.isInteger(iterations) || iterations < 1) throw refused("malformed server-first-message");
    const salted = await saltedPassword(scramInput(this.password), fromBase64(salt), iterations);
    const withoutProof = `c=biws,r=${serverNonce}`;
    const authMessage = utf8.encode(`${this.clientFirstBare},${serverFirst},${withoutProof}`);
    const clientKey = hmac(sha256, salted, utf8.encode("Client Key"));
    const signature = hmac(sha256, sha256(clientKey), authMessage);
    const proof = clientKey.map((b, i) => b ^ signature[i]!);
    this.serverSignature = hmac(sha256, hmac(sha256, salted, utf8.encode("Server Key")), authMessage);
    return utf8.encode(`${withoutProof},p=${base64(proof)}`);
  }

  /** The server-final-message must carry the signature only a holder of the password's keys can make. */
  check(serverFinal: string): void {
    const v = /^v=([A-Za-z0-9+/=]+)/.exec(serverFinal);
    if (!v || !this.serverSignature || !constantTimeEqual(fromBase64(v[1]!), this.serverSignature)) throw refused("the server's signature is wrong");
  }
}
