// The one shape of every bounded wait on the upstream (a connect, a TLS
// handshake, a probe, a session reset): the work's answer, or what `late`
// says once `ms` have passed. The timer never outlives the wait.

export function within<T>(work: Promise<T>, ms: number, late: () => T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(late());
      } catch (err) {
        reject(err);
      }
    }, ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

/** The error a connection that did not answer in time fails with (a connect failure: 08001). */
export const connectTimeout = (message = "connect timeout"): Error => Object.assign(new Error(message), { code: "CONNECT_TIMEOUT" });
