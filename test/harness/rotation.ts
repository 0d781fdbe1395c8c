// A role whose upstream password lives in Secrets Manager (an RDS-style
// secret, the real SDK against the endpoint in test/harness), a throwaway
// PostgreSQL that checks it, and a Node gateway that lets the role in by a
// `trust` line and logs in upstream with the secret: what the rotation tests
// (requests and sessions alike) turn the password of.
import type { LogEvent } from "../../lib/log.ts";
import type { RunningGateway } from "../../lib/node/gateway.ts";
import { nodeSettings, startNodeGateway } from "./gateway.ts";
import { startCluster, type Cluster } from "./postgres.ts";
import { fakeClient, startFakeSecretsManager, type FakeSecretsManager } from "./secrets-manager.ts";

export interface RotatingRole {
  readonly cluster: Cluster;
  readonly sm: FakeSecretsManager;
  readonly gateway: RunningGateway;
  readonly logs: LogEvent[];
  /** The secret's text (RDS's shape) for `password`. */
  rds(password: string): string;
  /** The database's password for the role. */
  alterPassword(password: string): Promise<unknown>;
  /** Whether the gateway asked for the secret's `stage` since call number `since` (sm.calls.length). */
  fetchedStage(stage: string, since: number): boolean;
  close(): Promise<void>;
}

/** Role `app`, password `pw-0` in the database and in secret `db/app`; `env` adds to the gateway's settings. */
export async function startRotatingRole(env: Readonly<Record<string, string>>): Promise<RotatingRole> {
  const [cluster, sm] = await Promise.all([startCluster(), startFakeSecretsManager()]);
  // The fixture's own set-up: a failure here leaves nothing running either.
  const rds = (password: string) => JSON.stringify({ username: "app", password, host: "db.internal", port: 5432, dbname: "postgres", engine: "postgres" });
  await cluster.sql.unsafe(`create role app login password 'pw-0'`);
  await cluster.writeHba("host all app 127.0.0.1/32 scram-sha-256\n", { reload: true });
  sm.put("db/app", rds("pw-0"));
  sm.put("gw/config", JSON.stringify({ hba: "host all app 127.0.0.1/32 trust\n", roles: JSON.stringify({ app: "secretsmanager:db/app" }) }));
  const settings = nodeSettings({ HBAGATE_HBA_FILE: "secretsmanager:gw/config#hba", HBAGATE_ROLE_CREDENTIALS_FILE: "secretsmanager:gw/config#roles", ...env }, cluster.port);
  const logs: LogEvent[] = [];
  let gateway: RunningGateway;
  try {
    gateway = await startNodeGateway(settings, logs, fakeClient(sm.endpoint));
  } catch (err) {
    await Promise.all([cluster.stop(), sm.close()]);
    throw err;
  }
  return {
    cluster,
    sm,
    gateway,
    logs,
    rds,
    alterPassword: (password) => cluster.sql.unsafe(`alter role app password '${password}'`),
    fetchedStage: (stage, since) => sm.calls.slice(since).some((c) => c.secretId === "db/app" && c.versionStage === stage),
    async close() {
      await gateway.close();
      await Promise.all([cluster.stop(), sm.close()]);
    },
  };
}
