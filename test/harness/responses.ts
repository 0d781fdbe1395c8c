// Every response a test got, headers and body as text, to search for what must
// never be in one (passwords, stored verifier secrets, service passwords).
// Records through a Hono app's fetch (which app.request and listeners call)
// or through a wrapped fetch; a body is read from a clone, so the test reads
// its own response as usual.
import type { Hono } from "hono";

export class Responses {
  private readonly texts: Promise<string>[] = [];

  /** How many responses were recorded. */
  get count(): number {
    return this.texts.length;
  }

  record(res: Response): Response {
    const headers = JSON.stringify([...res.headers]);
    this.texts.push(res.clone().text().then((body) => `${headers}\n${body}`, (e: unknown) => `${headers}\n(body unreadable: ${String(e)})`));
    return res;
  }

  /** `app`, its fetch (and so its request) recording every response. */
  app<A extends Pick<Hono, "fetch">>(app: A): A {
    const inner = app.fetch;
    app.fetch = ((...args: Parameters<Hono["fetch"]>) => {
      const res = inner(...args);
      return res instanceof Promise ? res.then((r) => this.record(r)) : this.record(res);
    }) as Hono["fetch"];
    return app;
  }

  /** A fetch that records what it gets. */
  fetch(): typeof fetch {
    return (async (...args: Parameters<typeof fetch>) => this.record(await fetch(...args))) as typeof fetch;
  }

  /** Every recorded response, headers then body, as one text. */
  async text(): Promise<string> {
    return (await Promise.all(this.texts)).join("\n");
  }
}
