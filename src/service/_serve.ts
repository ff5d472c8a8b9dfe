/** Serve a service with `Deno.serve` until a signal aborts, then shut down in order. */

import type { JobManager } from "../../mod.ts";
import { isLoopback } from "./_http.ts";
import { createService, type ServiceOptions } from "./_service.ts";

/** Options of {@linkcode serve}. */
export interface ServeOptions extends ServiceOptions {
  /**
   * The address to listen on. Anything but loopback needs a `token`.
   *
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * The port; 0 picks a free one.
   *
   * @default {8000}
   */
  port?: number;
  /** Shuts the service down when aborted: event streams end, then the server stops. */
  signal?: AbortSignal;
  /**
   * Called once listening, with the address. Without it (and without `quiet`), `serve` prints
   * `bgproc service on http://127.0.0.1:8000/; Ctrl-C stops it` to stderr, as `Deno.serve` prints its address.
   */
  onListen?: (address: { hostname: string; port: number; url: string }) => void;
  /**
   * Print nothing when listening (when there is no `onListen`).
   *
   * @default {false}
   */
  quiet?: boolean;
}

/**
 * Listen and serve until `signal` aborts; the manager stays open for the caller to close.
 *
 * @param options The service's options, the address, and the signal that ends it.
 * @returns Settles once the server has stopped.
 * @throws {TypeError} When binding beyond loopback without a token.
 * @throws {Error} With a one-line message when the address cannot be listened on (a port in use).
 *
 * @example Serve until Ctrl-C
 * ```ts ignore
 * import { JobManager } from "@bgproc/blender";
 * import { serve } from "@bgproc/blender/service";
 *
 * await using manager = new JobManager();
 * const stop = new AbortController();
 * Deno.addSignalListener("SIGINT", () => stop.abort());
 * await serve({ manager, scriptsDir: "./scripts", signal: stop.signal });
 * ```
 */
export async function serve(options: ServeOptions): Promise<void> {
  const { hostname = "127.0.0.1", port = 8000, signal, quiet = false, onListen: given, ...serviceOptions } = options;
  const onListen = given ?? (quiet ? undefined : announce(signal));
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Cannot serve as 'port' must be a whole number from 0 to 65535: current value is ${port}`);
  }
  if (!isLoopback(hostname) && serviceOptions.token === undefined) {
    throw new TypeError(`Cannot serve on ${hostname} without a token: anything but loopback needs one`);
  }
  await using service = createService(serviceOptions as ServiceOptions & { manager: JobManager });
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname,
      port,
      onListen: (address) => {
        const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
        onListen?.({ hostname: address.hostname, port: address.port, url: `http://${host}:${address.port}/` });
      },
      onError: () => new Response(JSON.stringify({ error: "internal error", detail: "" }), { status: 500 }),
    }, service.fetch);
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(`Cannot listen on ${hostname}:${port}: the port is in use`, { cause: error });
    }
    if (error instanceof Error) {
      throw new Error(`Cannot listen on ${hostname}:${port}: ${error.message.split("\n")[0]}`, { cause: error });
    }
    throw error;
  }
  const shutdown = async () => {
    await service.close();
    await server.shutdown();
  };
  if (signal?.aborted) await shutdown();
  else {
    const listener = () => void shutdown();
    signal?.addEventListener("abort", listener, { once: true });
    try {
      await server.finished;
    } finally {
      signal?.removeEventListener("abort", listener);
    }
  }
  await server.finished;
}

/** The default `onListen`: the URL and how to stop, on stderr (as `Deno.serve` says where it listens). */
function announce(signal: AbortSignal | undefined): (address: { url: string }) => void {
  const stop = signal === undefined ? "Ctrl-C stops it" : "it stops when its signal aborts (Ctrl-C ends the process)";
  return ({ url }) => {
    // deno-lint-ignore no-console
    console.error(`bgproc service on ${url}; ${stop}`);
  };
}
