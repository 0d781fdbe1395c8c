// The red team's set-up for the pooled request path: callers of one role,
// `app`, behind a trust line, sharing one pooled connection
// (HBAGATE_POOL_MAX=1), so that each request runs on the backend the last
// one left, against a cluster of its own.
import type { Pools } from "../../lib/upstream/pools.ts";
import { testApp } from "../harness/gateway.ts";
import { startCluster, type Cluster } from "../harness/postgres.ts";
import { postSql, testPools } from "../http/deps.ts";

export interface SharedRoleOptions {
  /** The request deadline (HBAGATE_REQUEST_TIMEOUT_MS). */
  readonly requestTimeoutMs?: number;
  /** Seconds; also the bound on a session reset. */
  readonly connectTimeout?: number;
}

export class SharedRole {
  private constructor(
    readonly cluster: Cluster,
    readonly pools: Pools,
    private readonly app: ReturnType<typeof testApp>,
  ) {}

  /** A cluster with role `app` and what `sql` creates (run as the superuser), and a gateway over one connection. */
  static async start(sql = "", options: SharedRoleOptions = {}): Promise<SharedRole> {
    const cluster = await startCluster();
    await cluster.sql.unsafe(`create role app login; ${sql}`);
    await cluster.writeHba("host all all 127.0.0.1/32 trust\n", { reload: true });
    const pools = testPools(cluster.port, { max: 1, ...(options.connectTimeout ? { connectTimeout: options.connectTimeout } : {}) });
    const app = testApp(pools, "host all all all trust\n", {
      caller: { anonymousUser: "app" },
      ...(options.requestTimeoutMs ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
    });
    return new SharedRole(cluster, pools, app);
  }

  post(body: unknown): ReturnType<typeof postSql> {
    return postSql(this.app, body);
  }

  async stop(): Promise<void> {
    await this.pools.close();
    await this.cluster.stop();
  }
}
