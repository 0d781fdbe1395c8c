// The one error type callers ever see: a SQLSTATE plus PostgreSQL's fields.
// HTTP statuses are decided only at the edge (lib/http/status.ts).

/** SQLSTATEs the gateway raises itself (PostgreSQL Appendix A): the only codes gatewayError takes. */
export const SQLSTATE = {
  invalidAuthorizationSpecification: "28000",
  invalidPassword: "28P01",
  protocolViolation: "08P01",
  connectionFailure: "08006",
  transactionResolutionUnknown: "08007",
  sqlclientUnableToEstablishSqlconnection: "08001",
  tooManyConnections: "53300",
  configurationLimitExceeded: "53400",
  queryCanceled: "57014",
  /** A session ended by the gateway's administrator (its lifetime, a shutdown). */
  adminShutdown: "57P01",
  idleSessionTimeout: "57P05",
  idleInTransactionSessionTimeout: "25P03",
  invalidParameterValue: "22023",
  /** Text with no form in the database's encoding (character_not_in_repertoire): a lone UTF-16 surrogate, which no UTF-8 can carry. */
  characterNotInRepertoire: "22021",
  programLimitExceeded: "54000",
  featureNotSupported: "0A000",
  /** PostgreSQL's for unreadable COPY input, which the gateway never sends; here: a request body in a format it does not read (415). */
  badCopyFileFormat: "22P04",
  internalError: "XX000",
  /** A brute-force lock (sqlserver_rejected_establishment_of_sqlconnection): a refusal not about the credentials. */
  sqlserverRejectedEstablishment: "08004",
  /** An endpoint that does not exist (undefined_object). */
  undefinedObject: "42704",
  /** A request body that is not JSON (invalid_text_representation). */
  invalidTextRepresentation: "22P02",
  /** config_file_error: a line that this server's configuration cannot satisfy (a client certificate with no CA to check it). */
  configFileError: "F0000",
} as const;

/** A SQLSTATE the gateway raises itself: a closed set, so a new one is added above with its name. */
export type GatewaySqlState = (typeof SQLSTATE)[keyof typeof SQLSTATE];

/** The fields of a PostgreSQL ErrorResponse that a caller may see. */
export interface PgErrorFields {
  readonly code: string;
  readonly message: string;
  readonly severity?: string;
  readonly detail?: string;
  readonly hint?: string;
  readonly position?: string;
  readonly internalPosition?: string;
  readonly internalQuery?: string;
  readonly where?: string;
  readonly schema?: string;
  readonly table?: string;
  readonly column?: string;
  readonly dataType?: string;
  readonly constraint?: string;
  /** Where in PostgreSQL's source the error was raised (Neon's clients show these). */
  readonly file?: string;
  readonly line?: string;
  readonly routine?: string;
}

/**
 * The longest text of an error field a caller (or the log) gets. Errors quote
 * what the caller sent — PostgreSQL its values ("invalid input syntax for type
 * integer: "xxxx…""), the gateway an unknown key of the body — so an error
 * could be as large as the request: past every response limit (Lambda's 6 MB
 * payload: a bare 502) and into the log. Longer fields are cut, and say so.
 */
export const MAX_ERROR_FIELD_CHARS = 8192;

function bounded(text: string): string {
  if (text.length <= MAX_ERROR_FIELD_CHARS) return text;
  // Never between the two halves of a character outside the BMP (an emoji): the cut text stays valid Unicode.
  const high = text.charCodeAt(MAX_ERROR_FIELD_CHARS - 1);
  const at = high >= 0xd800 && high <= 0xdbff ? MAX_ERROR_FIELD_CHARS - 1 : MAX_ERROR_FIELD_CHARS;
  return `${text.slice(0, at)}… (${text.length - at} more characters cut by hbagate)`;
}

export class GatewayError extends Error {
  readonly fields: PgErrorFields;
  constructor(fields: PgErrorFields, options?: { cause?: unknown }) {
    const all: Record<string, string> = { severity: "ERROR" };
    for (const [k, v] of Object.entries(fields)) if (typeof v === "string") all[k] = bounded(v);
    super(all.message, options);
    this.name = "GatewayError";
    this.fields = all as unknown as PgErrorFields;
  }
  get code(): string {
    return this.fields.code;
  }
}

export function gatewayError(code: GatewaySqlState, message: string, extra: Omit<PgErrorFields, "code" | "message"> = {}): GatewayError {
  return new GatewayError({ code, message, ...extra });
}
