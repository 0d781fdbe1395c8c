// Values between JSON and PostgreSQL's text format, for postgres.js.
//
// Results on /v1: exact where JavaScript numbers or Dates would lose
// information. postgres.js already returns int8 and numeric as strings; these
// parsers cover timestamps (ISO-8601 with microseconds), dates, bytea ("\x…"
// as PostgreSQL prints it) and non-finite floats.
//
// Parameters: the gateway converts every JSON parameter to text and lets the
// server infer its type, as a parameter of unknown type. postgres.js picks a
// serializer from the type the server inferred, and some of its defaults
// re-encode text (JSON.stringify on json, `=== true` on bool, Date on
// timestamps), so every type registered here passes text through unchanged.

/** "2024-01-01 12:00:00.123456+05:30" -> "2024-01-01T12:00:00.123456+05:30" (microseconds kept). */
export function isoTimestamp(text: string): string {
  const m = /^(\d{4,}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?)([+-]\d{2})?(?::?(\d{2}))?(?::?(\d{2}))?$/.exec(text);
  if (!m) return text; // infinity, -infinity, BC dates: PostgreSQL's own text
  const [, date, time, tzh, tzm, tzs] = m;
  const zone = tzh === undefined ? "" : `${tzh}:${tzm ?? "00"}${tzs ? `:${tzs}` : ""}`;
  return `${date}T${time}${zone}`;
}

/** float4/float8: NaN and the infinities have no JSON number, so they stay text. */
function float(text: string): number | string {
  const n = Number(text);
  return Number.isFinite(n) ? n : text;
}

const text = (x: unknown) => (typeof x === "string" ? x : String(x));

function type(oids: number[], parse: (text: string) => unknown) {
  return { to: oids[0]!, from: oids, serialize: text, parse };
}

/** postgres.js `types` option. */
export const jsonTypes = {
  hbagateTimestamp: type([1184, 1114], isoTimestamp),
  hbagateDate: type([1082], (t) => t),
  hbagateBytea: type([17], (t) => t),
  hbagateFloat: type([701, 700], float),
  hbagateBool: type([16], (t) => t === "t"),
  hbagateJson: type([3802, 114], (t) => JSON.parse(t) as unknown),
};

/** A JSON request parameter as PostgreSQL text; null stays NULL. */
export function parameterText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}
