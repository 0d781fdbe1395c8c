// A throwaway OAuth issuer for the oauth method's tests: a discovery document
// and a JWKS over HTTPS, its certificate from a throwaway CA (certs.ts), keys
// generated per run and rotatable; tokens signed with jose. It can be taken
// down (an outage) and counts the fetches it answered.
import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from "jose";
import { IssuerKeys } from "../../lib/auth/oauth/issuer-keys.ts";
import type { OAuthSettings } from "../../lib/auth/oauth/settings.ts";
import type { Log } from "../../lib/log.ts";
import { httpsGet } from "../../lib/node/https-get.ts";
import { makeCa } from "./certs.ts";

export interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export interface Issuer {
  /** The issuer identifier (https://localhost:port). */
  readonly url: string;
  /** PEM of the CA that signed the issuer's certificate. */
  readonly caPem: string;
  readonly caFile: string;
  /** Keys published in the JWKS, newest first. */
  keys: SigningKey[];
  /** Answer 503 to everything while true. */
  down: boolean;
  /** Hold each JWKS answer this long (a slow issuer). */
  jwksDelayMs: number;
  /** Fetches answered, by path. */
  readonly fetches: Map<string, number>;
  newKey(alg?: string): Promise<SigningKey>;
  /** A token signed by `key` (default: the newest), iss = this issuer, exp in an hour unless claims say otherwise. */
  sign(claims: JWTPayload, options?: { key?: SigningKey; header?: Record<string, unknown> }): Promise<string>;
  stop(): Promise<void>;
}

let counter = 0;

export async function startIssuer(options: { documentIssuer?: (url: string) => string } = {}): Promise<Issuer> {
  const dir = mkdtempSync(join(tmpdir(), "hbagate-issuer-"));
  const ca = makeCa(dir, "issuer-ca", { cn: "hbagate test issuer CA" });
  const leaf = ca.issue("issuer", { cn: "localhost", serverFor: ["DNS:localhost", "IP:127.0.0.1"] });

  const fetches = new Map<string, number>();
  const issuer: Partial<Issuer> & { keys: SigningKey[]; down: boolean; jwksDelayMs: number } = { keys: [], down: false, jwksDelayMs: 0 };
  let url = "";
  const server: Server = createServer({ key: leaf.key, cert: leaf.cert }, (req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (issuer.down) {
      res.writeHead(503).end();
      return;
    }
    fetches.set(path, (fetches.get(path) ?? 0) + 1);
    const json = (v: unknown) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(v));
    if (path === "/.well-known/openid-configuration") return json({ issuer: options.documentIssuer ? options.documentIssuer(url) : url, jwks_uri: `${url}/jwks` });
    if (path === "/jwks") {
      const keys = issuer.keys.map((k) => k.publicJwk);
      if (issuer.jwksDelayMs > 0) setTimeout(() => json({ keys }), issuer.jwksDelayMs);
      else json({ keys });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `https://localhost:${(server.address() as AddressInfo).port}`;

  const newKey = async (alg = "ES256"): Promise<SigningKey> => {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const kid = `k${++counter}`;
    const key = { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
    issuer.keys.unshift(key);
    return key;
  };
  await newKey();

  return Object.assign(issuer, {
    url,
    caPem: ca.cert,
    caFile: ca.certFile,
    fetches,
    newKey,
    async sign(claims: JWTPayload, o: { key?: SigningKey; header?: Record<string, unknown> } = {}) {
      const key = o.key ?? issuer.keys[0]!;
      return new SignJWT({ iss: url, exp: Math.floor(Date.now() / 1000) + 3600, ...claims })
        .setProtectedHeader({ alg: key.alg, kid: key.kid, ...o.header })
        .sign(key.privateKey);
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }) as Issuer;
}

/** The oauth settings a gateway under test uses for `issuer`: its CA trusted, short bounds, no leeway unless asked. */
export function oauthSettings(issuer: Issuer, log: Log, overrides: Partial<OAuthSettings> = {}): OAuthSettings {
  return {
    keys: new IssuerKeys(httpsGet({ timeoutMs: 2000, maxBytes: 1 << 20, ca: issuer.caPem }), { refreshMs: 300_000, maxStaleMs: 3_600_000, cooldownMs: 200 }, log),
    audience: undefined,
    algorithms: ["ES256", "RS256", "EdDSA"],
    leewaySeconds: 0,
    identityClaim: "sub",
    roleClaim: "role",
    ...overrides,
  };
}
