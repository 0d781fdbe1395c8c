// The issuer's keys under hostile and unlucky traffic (a red team's findings):
// a made-up key id cannot spend the refetch a real rotation needs, an issuer
// that is down is asked at most once per cooldown, and a well-known URI's
// document must name the issuer that URI was built from. Fetches are
// answered in memory; the cooldown runs on the real clock.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK } from "jose";
import { IssuerKeys, issuerOfDiscoveryUrl } from "../../lib/auth/oauth/issuer-keys.ts";

const ISS = "https://idp.example";
const COOLDOWN_MS = 300;

async function key(kid: string): Promise<{ kid: string; privateKey: CryptoKey; jwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" } };
}

function fakeIssuer(documentIssuer = ISS) {
  const state = { jwks: [] as JWK[], down: false, gets: 0 };
  const get = async (url: string) => {
    state.gets++;
    if (state.down) throw new Error("HTTP 503");
    if (url.includes("/.well-known/")) return JSON.stringify({ issuer: documentIssuer, jwks_uri: `${ISS}/jwks` });
    return JSON.stringify({ keys: state.jwks });
  };
  return { state, get };
}

const sign = (k: { kid: string; privateKey: CryptoKey }, kid: string = k.kid) =>
  new SignJWT({ iss: ISS, sub: "x", exp: Math.floor(Date.now() / 1000) + 600 }).setProtectedHeader({ alg: "ES256", kid }).sign(k.privateKey);

async function verdict(keys: IssuerKeys, token: string, kid: string, issuer = ISS): Promise<string> {
  try {
    const r = await keys.keysFor(issuer, kid);
    await jwtVerify(token, r.keys, { issuer: r.issuer, algorithms: ["ES256"] });
    return "ok";
  } catch (e) {
    return (e as { code?: string }).code ?? (e as Error).message;
  }
}

describe("issuer keys", () => {
  test("a made-up key id just before a rotation: the new key's tokens still pass (they wait for the next fetch)", async () => {
    const { state, get } = fakeIssuer();
    const keys = new IssuerKeys(get, { refreshMs: 300_000, maxStaleMs: 3_600_000, cooldownMs: COOLDOWN_MS }, () => {});
    const k1 = await key("k1");
    state.jwks = [k1.jwk];
    assert.equal(await verdict(keys, await sign(k1), "k1"), "ok");
    await new Promise((r) => setTimeout(r, COOLDOWN_MS + 50));
    // An attacker's junk kid spends a fetch...
    assert.notEqual(await verdict(keys, await sign(k1, "made-up"), "made-up"), "ok");
    // ...and the issuer rotates right after.
    const k2 = await key("k2");
    state.jwks = [k2.jwk, k1.jwk];
    const results = await Promise.all(Array.from({ length: 5 }, async () => verdict(keys, await sign(k2), "k2")));
    assert.deepEqual(results, ["ok", "ok", "ok", "ok", "ok"]);
  });

  test("a flood of made-up key ids, or an issuer that is down, costs at most one fetch per cooldown", async () => {
    const { state, get } = fakeIssuer();
    const keys = new IssuerKeys(get, { refreshMs: 300_000, maxStaleMs: 3_600_000, cooldownMs: COOLDOWN_MS }, () => {});
    const k1 = await key("k1");
    state.jwks = [k1.jwk];
    await verdict(keys, await sign(k1), "k1");
    const before = state.gets;
    await Promise.all(Array.from({ length: 50 }, async (_, i) => verdict(keys, await sign(k1, `junk-${i}`), `junk-${i}`)));
    assert.ok(state.gets - before <= 2, `${state.gets - before} fetches for 50 made-up key ids`);

    const never = fakeIssuer();
    never.state.down = true;
    const down = new IssuerKeys(never.get, { refreshMs: 300_000, maxStaleMs: 3_600_000, cooldownMs: COOLDOWN_MS }, () => {});
    const answers = [];
    for (let i = 0; i < 20; i++) answers.push(await verdict(down, await sign(k1), "k1"));
    assert.ok(answers.every((a) => a === "08001"), answers.join());
    assert.equal(never.state.gets, 1, "one attempt (the discovery document) for 20 requests within the cooldown");
  });

  test("a well-known URI: the document must name the issuer the URI was built from", async () => {
    assert.equal(issuerOfDiscoveryUrl("https://idp.example/.well-known/openid-configuration"), "https://idp.example");
    assert.equal(issuerOfDiscoveryUrl("https://idp.example/tenant/.well-known/openid-configuration"), "https://idp.example/tenant");
    assert.equal(issuerOfDiscoveryUrl("https://idp.example/.well-known/oauth-authorization-server/tenant"), "https://idp.example/tenant");
    const k1 = await key("k1");
    const liar = fakeIssuer("https://someone-else.example/tenant-b");
    liar.state.jwks = [k1.jwk];
    const keys = new IssuerKeys(liar.get, { refreshMs: 300_000, maxStaleMs: 3_600_000, cooldownMs: COOLDOWN_MS }, () => {});
    assert.equal(await verdict(keys, await sign(k1), "k1", `${ISS}/.well-known/openid-configuration`), "08001");
    const honest = fakeIssuer(ISS);
    honest.state.jwks = [k1.jwk];
    const ok = new IssuerKeys(honest.get, { refreshMs: 300_000, maxStaleMs: 3_600_000, cooldownMs: COOLDOWN_MS }, () => {});
    assert.equal(await verdict(ok, await sign(k1), "k1", `${ISS}/.well-known/openid-configuration`), "ok");
  });
});
