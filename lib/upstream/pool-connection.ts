// One pool connection as the lender counts it: opened (TCP, TLS, login) on
// its first use, so that a server that is down or refuses the login is a
// failure to connect (08001, 28xxx) before any request is written, never a
// request of unknown outcome; then one WireConnection, one server session,
// for its whole life.
import type { WireConnection } from "./wire-connection.ts";

export class PoolConnection {
  private opening: Promise<WireConnection> | undefined;
  private opened: WireConnection | undefined;

  constructor(private readonly open: () => Promise<WireConnection>) {}

  /** Logs in on the first call; the same connection (or the same failure) after. */
  async connect(): Promise<WireConnection> {
    this.opening ??= this.open().then((wire) => (this.opened = wire));
    return this.opening;
  }

  /** The connection, once `connect` has settled with it. */
  get wire(): WireConnection {
    if (!this.opened) throw new Error("the pool connection is used before it has logged in");
    return this.opened;
  }

  /** Ends the server session (waiting for a login under way first); settles once it has closed. */
  async end(): Promise<void> {
    if (!this.opening) return;
    const wire = await this.opening.catch(() => undefined);
    await wire?.end();
  }
}
