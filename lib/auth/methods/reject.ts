// `reject`: the line refuses whoever it matched, with PostgreSQL's wording.
import { gatewayError, SQLSTATE } from "../../errors.ts";
import { rejectMessage } from "../messages.ts";
import type { MethodCheck } from "./verifiers.ts";

export const checkReject: MethodCheck<{ readonly name: "reject" }> = async (_method, caller) => {
  throw gatewayError(SQLSTATE.invalidAuthorizationSpecification, rejectMessage(caller.facts));
};
