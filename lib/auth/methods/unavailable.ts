// Methods whose lines load (with PostgreSQL's checks of their options) but
// that this version cannot verify yet: they refuse whoever they match (fail
// closed; nothing falls through to a later line).
import { gatewayError, SQLSTATE } from "../../errors.ts";
import type { MethodCheck } from "./verifiers.ts";

export const checkUnavailable: MethodCheck<{ readonly name: "cert" }> = async (method) => {
  throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, `authentication method "${method.name}" is not available in this version of hbagate`);
};
