// `cert`: the caller's verified client certificate is the whole proof
// (PostgreSQL 20.12 "Certificate Authentication"): its CN — or subject DN
// with clientname=DN — must be the user or map to it through map=. Lines of
// this method always carry clientcert=verify-full, so authenticate.ts has
// already refused a caller without a verified certificate.
import { checkCertificateName } from "../client-cert.ts";
import type { MethodCheck } from "./verifiers.ts";

export const checkCert: MethodCheck<{ readonly name: "cert"; readonly map: string | undefined }> = async (_method, caller, rule, verifiers) => ({
  // The subject DN is who the caller is (PostgreSQL's authn_id for cert), bounded on its own in the pools.
  identity: await checkCertificateName(rule, caller, verifiers),
});
