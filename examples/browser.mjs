// What a page served from http://localhost:5173 runs, with HBAGATE_CORS_ORIGINS=http://localhost:5173.
// A real app sends its user's bearer token (authorization: `Bearer ${token}`), never a database password.
const gateway = globalThis.process?.env?.HBAGATE_URL ?? "http://127.0.0.1:8080"; // in a page: the gateway's URL
const res = await fetch(`${gateway}/v1/postgres/sql`, {
  method: "POST",
  headers: { "content-type": "application/json", authorization: `Basic ${btoa("app:app-secret")}` },
  body: JSON.stringify({ query: "select $1::text as greeting", params: ["hello from the page"] }),
});
const { rows, error } = await res.json();
console.log(res.status, error ?? rows); // 200 [ { greeting: 'hello from the page' } ]
