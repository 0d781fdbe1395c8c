// SQLSTATE -> HTTP status: the one table, documented in docs/http-api.md and the README's troubleshooting table.

const EXACT: Readonly<Record<string, number>> = {
  "08P01": 400, // protocol violation: the request itself is malformed
  "08004": 429, // locked out after repeated authentication failures
  "08007": 502, // the connection was lost with the request on it: outcome unknown, not to be retried blindly
  "28000": 403, // no pg_hba.conf entry, reject, LDAP failure
  "28P01": 401, // wrong password
  "57014": 504, // statement timeout or cancel
  "57P01": 503, // admin shutdown
  "57P02": 503, // crash shutdown
  "57P03": 503, // cannot connect now
  "53300": 503, // too many connections
  "53400": 507, // a configured response limit (rows, bytes) was exceeded
  "40001": 409, // serialization failure: retry
  "40P01": 409, // deadlock: retry
  "54000": 413, // program limit exceeded (request too large)
  // bad COPY file format: PostgreSQL raises it only while reading COPY data,
  // which the gateway never sends, so it is free to mean a request body in a
  // format the gateway does not read (a Content-Type other than JSON)
  "22P04": 415,
};

const BY_CLASS: Readonly<Record<string, number>> = {
  "08": 503, // connection exceptions: the upstream is unavailable
  "53": 503, // insufficient resources
  "23": 409, // integrity constraint violations
  "28": 403,
  XX: 500,
  F0: 500, // configuration file error: the gateway's configuration, not the request
};

export function httpStatus(sqlstate: string): number {
  return EXACT[sqlstate] ?? BY_CLASS[sqlstate.slice(0, 2)] ?? 400;
}
