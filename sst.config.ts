/// <reference path="./.sst/platform/config.d.ts" />
// Minimal SST app; the infrastructure components arrive with the deployment
// issue and will live in infra/.
export default $config({
  app(input) {
    return {
      name: "hbagate",
      removal: input?.stage === "production" ? "retain" : "remove",
      home: "aws",
    };
  },
  async run() {},
});
