/// <reference path="./.sst/platform/config.d.ts" />
// Wires the components in infra/. Options: the stage ("demo" creates a
// database) and HBAGATE_DEPLOY_* variables — infra/options.ts, README
// "Deploying to AWS (SST)".
export default $config({
  app(input) {
    return {
      name: "hbagate",
      removal: input?.stage === "production" ? "retain" : "remove",
      home: "aws",
      // Pinned, so a deploy does not pick up whatever provider is newest.
      providers: { aws: { version: "7.20.0" } },
    };
  },
  async run() {
    const { deployOptions } = await import("./infra/options");
    const { gatewaySecrets } = await import("./infra/secrets");
    const { demoDatabase } = await import("./infra/database");
    const { gateway } = await import("./infra/gateway");
    const { buildFunctionBundle, DEFAULT_BUNDLE_DIR } = await import("./infra/bundle");

    const options = deployOptions($app.stage, process.env);
    const secrets = gatewaySecrets();
    const upstream = options.upstream.kind === "demo" ? ({ kind: "demo", database: demoDatabase() } as const) : options.upstream;
    const bundle = buildFunctionBundle($cli.paths.root, process.env.HBAGATE_DEPLOY_BUNDLE_DIR ?? DEFAULT_BUNDLE_DIR);
    const { url } = gateway({ secrets, upstream, bundle, verifier: options.verifier, apiGateway: options.apiGateway, ...(options.serviceUser ? { serviceUser: options.serviceUser } : {}), ...(options.mutualTls ? { mutualTls: options.mutualTls } : {}) });
    return {
      url,
      rulesSecret: secrets.rules.arn,
      credentialsSecret: secrets.credentials.arn,
      // The master user's {"username","password"} lives in the secret SST made
      // for the proxy; its ARN is the instance's lookup tag. Never the password itself.
      ...(upstream.kind === "demo" ? { databaseSecret: upstream.database.postgres.nodes.instance!.tags.apply((tags) => tags?.["sst:lookup:password"]) } : {}),
    };
  },
});
