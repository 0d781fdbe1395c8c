// `node --import ./test/docs/browser-fetch.mjs page.mjs`: the page's fetch behaves as a browser's
// on a page from BROWSER_ORIGIN (default http://localhost:5173) does for a cross-origin request:
// a preflight first (JSON and Authorization are not "simple"), the Origin header on both, and a
// response the page may not read unless the server allowed that origin.
const origin = process.env.BROWSER_ORIGIN ?? "http://localhost:5173";
const nodeFetch = globalThis.fetch;

globalThis.fetch = async (url, init = {}) => {
  const headers = new Headers(init.headers);
  const method = init.method ?? "GET";
  const failed = (why) => {
    // A browser says only "Failed to fetch"; the console says why.
    console.error(`CORS: ${why}`);
    return new TypeError("Failed to fetch");
  };
  const preflight = await nodeFetch(url, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": method, "access-control-request-headers": [...headers.keys()].join(",") },
  });
  const allowedOrigin = preflight.headers.get("access-control-allow-origin");
  if (!preflight.ok || (allowedOrigin !== origin && allowedOrigin !== "*")) throw failed(`preflight ${preflight.status}, access-control-allow-origin ${allowedOrigin}`);
  const allowedHeaders = (preflight.headers.get("access-control-allow-headers") ?? "").toLowerCase().split(/\s*,\s*/);
  for (const h of headers.keys()) if (!allowedHeaders.includes(h) && !allowedHeaders.includes("*")) throw failed(`header ${h} not allowed`);
  headers.set("origin", origin);
  const res = await nodeFetch(url, { ...init, headers });
  const readable = res.headers.get("access-control-allow-origin");
  if (readable !== origin && readable !== "*") throw failed(`response without access-control-allow-origin for ${origin}`);
  return res;
};
