// One tokenized pg_hba.conf line -> an HbaRule or PostgreSQL's error message
// for it (hba.c: parse_hba_line). The order of the checks is PostgreSQL's, so
// a line with several problems reports the same one PostgreSQL would.
import { cidrMask, parseNumericHost, type IpAddress } from "./address.ts";
import {
  applyOption,
  displayOptions,
  finishMethod,
  HTTP_IMPOSSIBLE,
  newDraft,
  SUPPORTED_METHODS,
  type SupportedMethod,
} from "./options.ts";
import { compilePattern, isPattern } from "./pattern.ts";
import { CONNECTION_TYPES, type AddressMatcher, type ConnectionType, type HbaRule, type NameMatcher } from "./rule.ts";
import { isKeyword, type Token, type TokenizedLine } from "./tokenize.ts";

class LineError extends Error {}

function fail(message: string): never {
  throw new LineError(message);
}

function databaseMatcher(t: Token): NameMatcher {
  if (isPattern(t.text)) return patternMatcher(t);
  if (isKeyword(t, "all")) return { kind: "all", text: t.text };
  if (isKeyword(t, "sameuser")) return { kind: "sameuser", text: t.text };
  if (isKeyword(t, "samerole") || isKeyword(t, "samegroup")) return { kind: "samerole", text: t.text };
  if (isKeyword(t, "replication")) return { kind: "replication", text: t.text };
  return { kind: "name", text: t.text };
}

function userMatcher(t: Token): NameMatcher {
  if (!t.quoted && t.text.startsWith("+")) return { kind: "member", text: t.text, role: t.text.slice(1) };
  if (isKeyword(t, "all")) return { kind: "all", text: t.text };
  if (isPattern(t.text)) return patternMatcher(t);
  return { kind: "name", text: t.text };
}

function patternMatcher(t: Token): NameMatcher {
  const compiled = compilePattern(t.text.slice(1));
  if ("error" in compiled) fail(compiled.error);
  return { kind: "regex", text: t.text, regex: compiled.regex };
}

function single(field: readonly Token[], what: string): Token {
  if (field.length > 1) fail(`multiple values specified for ${what}`);
  return field[0]!;
}

function addressField(fields: readonly (readonly Token[])[], at: number): { address: AddressMatcher; next: number } {
  const field = fields[at];
  if (!field) fail("end-of-line before IP address specification");
  const token = single(field, "host address");
  if (isKeyword(token, "all")) return { address: { kind: "all" }, next: at + 1 };
  if (isKeyword(token, "samehost")) return { address: { kind: "samehost" }, next: at + 1 };
  if (isKeyword(token, "samenet")) return { address: { kind: "samenet" }, next: at + 1 };

  const slash = token.text.indexOf("/");
  const host = slash < 0 ? token.text : token.text.slice(0, slash);
  const network = parseNumericHost(host);
  if (!network) {
    if (slash >= 0) fail(`specifying both host name and CIDR mask is invalid: "${token.text}"`);
    return { address: { kind: "hostname", name: host }, next: at + 1 };
  }
  if (slash >= 0) {
    const bytes = cidrMask(token.text.slice(slash + 1), network.family);
    if (!bytes) fail(`invalid CIDR mask in address "${token.text}"`);
    return { address: { kind: "cidr", network, mask: { family: network.family, bytes } }, next: at + 1 };
  }
  const maskField = fields[at + 1];
  if (!maskField) fail("end-of-line before netmask specification");
  const maskToken = single(maskField, "netmask");
  const mask: IpAddress | undefined = parseNumericHost(maskToken.text);
  if (!mask) fail(`invalid IP mask "${maskToken.text}": Name or service not known`);
  if (mask.family !== network.family) fail("IP address and mask do not match");
  return { address: { kind: "cidr", network, mask }, next: at + 2 };
}

function methodName(token: Token, type: ConnectionType): SupportedMethod {
  let name = token.text;
  // PostgreSQL silently turns ident on local lines into peer.
  if (name === "ident" && type === "local") name = "peer";
  if ((SUPPORTED_METHODS as readonly string[]).includes(name)) return name as SupportedMethod;
  if (name in HTTP_IMPOSSIBLE) {
    fail(`invalid authentication method "${name}": not supported by hbagate (${HTTP_IMPOSSIBLE[name as keyof typeof HTTP_IMPOSSIBLE]})`);
  }
  fail(`invalid authentication method "${name}"`);
}

function parse(tl: TokenizedLine, ruleNumber: number): HbaRule {
  const fields = tl.fields;
  const typeToken = single(fields[0]!, "connection type");
  if (!(CONNECTION_TYPES as readonly string[]).includes(typeToken.text)) {
    // PostgreSQL's message alone shows nothing wrong with "\uFEFFhost": the mark is invisible.
    const bom = typeToken.text.startsWith("\uFEFF") ? " (the line starts with a byte order mark, U+FEFF: save the file without one)" : "";
    fail(`invalid connection type "${typeToken.text}"${bom}`);
  }
  const type = typeToken.text as ConnectionType;

  const dbField = fields[1];
  if (!dbField) fail("end-of-line before database specification");
  const databases = dbField.map(databaseMatcher);
  const userField = fields[2];
  if (!userField) fail("end-of-line before role specification");
  const users = userField.map(userMatcher);

  let at = 3;
  let address: AddressMatcher | null = null;
  if (type !== "local") {
    const parsed = addressField(fields, at);
    address = parsed.address;
    at = parsed.next;
  }

  const methodField = fields[at];
  if (!methodField) fail("end-of-line before authentication method");
  const method = methodName(single(methodField, "authentication type"), type);
  if (type !== "local" && method === "peer") fail("peer authentication is only supported on local sockets");
  if (type !== "hostssl" && method === "cert") fail("cert authentication is only supported on hostssl connections");

  const draft = newDraft(method, type);
  for (const field of fields.slice(at + 1)) {
    for (const token of field) {
      const eq = token.text.indexOf("=");
      if (eq < 0) fail(`authentication option not in name=value format: ${token.text}`);
      const err = applyOption(draft, token.text.slice(0, eq), token.text.slice(eq + 1));
      if (err) fail(err);
    }
  }
  const authMethod = finishMethod(draft);
  if (typeof authMethod === "string") fail(authMethod);
  // cert implies full verification of the client certificate.
  if (method === "cert") draft.clientCert = "verify-full";

  return {
    file: tl.file,
    line: tl.line,
    raw: tl.raw,
    ruleNumber,
    type,
    databases,
    users,
    address,
    method: authMethod,
    clientCert: draft.clientCert === "off" ? undefined : { verify: draft.clientCert, name: draft.clientName },
    options: displayOptions(draft),
  };
}

/** Parse one tokenized line; the error is PostgreSQL's message for the line. */
export function parseHbaLine(tl: TokenizedLine, ruleNumber: number): HbaRule | { readonly error: string } {
  try {
    return parse(tl, ruleNumber);
  } catch (err) {
    if (err instanceof LineError) return { error: err.message };
    throw err;
  }
}
