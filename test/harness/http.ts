// What the tests send the gateway over HTTP: the Basic credentials header, and a query to a listening gateway.

/** An `Authorization: Basic` value for `user` and `password` (empty password by default). */
export const basic = (user: string, password = "") => "Basic " + Buffer.from(`${user}:${password}`).toString("base64");

export interface PostOptions {
  /** Extra request headers (an authorization from basic(), say). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly database?: string;
  /** Another fetch (Responses.fetch(), to record the answer). */
  readonly fetch?: typeof fetch;
  readonly signal?: AbortSignal;
}

/**
 * POST a JSON body to /v1/{database}/sql of a listening gateway at `baseUrl`: the status and
 * the parsed answer. (For an app in this process, postSql in test/http/deps.ts.)
 */
export async function postSqlTo(baseUrl: string, body: unknown, opts: PostOptions = {}): Promise<{ status: number; body: Record<string, any> }> {
  const res = await (opts.fetch ?? fetch)(`${baseUrl}/v1/${opts.database ?? "postgres"}/sql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...opts.headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/** A gateway's answer as "200", or "<status> <SQLSTATE>" for an error. */
export const statusAndCode = (r: { status: number; body: Record<string, any> }): string => (r.status === 200 ? "200" : `${r.status} ${r.body.error?.code}`);
