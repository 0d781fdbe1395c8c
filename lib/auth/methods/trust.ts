// `trust`: the line admits whoever it matched.
import type { MethodCheck } from "./verifiers.ts";

export const checkTrust: MethodCheck<{ readonly name: "trust" }> = async () => {};
