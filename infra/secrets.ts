// The gateway's configuration lives in two Secrets Manager secrets, created
// empty: `sst deploy` never holds their values, the operator puts them (docs/aws.md,
// "Deploying to AWS (SST)"). Plain aws.secretsmanager.Secret rather than
// sst.Secret, whose values pass through SST's own state and the function's
// environment. Linked through one sst.Linkable whose only permission is
// secretsmanager:GetSecretValue on exactly these two ARNs: the gateway never
// calls anything else (docs/configuration.md, "Secrets Manager").

export interface GatewaySecrets {
  /** JSON object: `hba` (pg_hba.conf text) and `ident` (pg_ident.conf text, may be empty). */
  readonly rules: aws.secretsmanager.Secret;
  /** JSON object: `roles` (role credentials JSON text) and, with the verifier option, `verifier`. */
  readonly credentials: aws.secretsmanager.Secret;
  readonly link: sst.Linkable<{ rules: $util.Output<string>; credentials: $util.Output<string> }>;
}

export function gatewaySecrets(): GatewaySecrets {
  const prefix = `${$app.name}-${$app.stage}`;
  const rules = new aws.secretsmanager.Secret("GatewayRules", {
    namePrefix: `${prefix}-rules-`,
    description: "hbagate rules: JSON keys hba (pg_hba.conf) and ident (pg_ident.conf)",
  });
  const credentials = new aws.secretsmanager.Secret("GatewayCredentials", {
    namePrefix: `${prefix}-credentials-`,
    description: "hbagate credentials: JSON keys roles (role credentials JSON) and verifier (auth_file format)",
  });
  const link = new sst.Linkable("GatewaySecrets", {
    properties: { rules: rules.arn, credentials: credentials.arn },
    include: [sst.aws.permission({ actions: ["secretsmanager:GetSecretValue"], resources: [rules.arn, credentials.arn] })],
  });
  return { rules, credentials, link };
}
