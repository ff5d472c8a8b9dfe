/** The error a caller catches when the NATS server cannot be used. */

/**
 * The NATS server could not be reached, refused the connection (auth), or
 * lacks JetStream.
 *
 * @example Tell an unreachable server from other failures
 * ```ts ignore
 * import { NatsConnectionError, NatsJobManager } from "@bgproc/blender/nats";
 *
 * try {
 *   await NatsJobManager.connect({ servers: "nats://127.0.0.1:4222" });
 * } catch (error) {
 *   if (error instanceof NatsConnectionError) console.error(`no NATS at ${error.url}`);
 * }
 * ```
 */
export class NatsConnectionError extends Error {
  /** The server URL(s) that were tried. */
  readonly url: string;

  /**
   * Make the error.
   *
   * @param url The server URL(s) tried.
   * @param message What went wrong.
   * @param options `cause`: the client's error.
   */
  constructor(url: string, message: string, options?: ErrorOptions) {
    super(`Cannot use NATS at ${url}: ${message}`, options);
    this.name = "NatsConnectionError";
    this.url = url;
  }
}
