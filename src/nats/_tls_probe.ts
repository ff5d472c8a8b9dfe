/**
 * A look at a NATS server's TLS before the client connects. With TLS 1.3 a
 * server that refuses this client's certificate says so only after the
 * handshake, and nats.js (on Deno's `node:tls`) then either waits for its
 * connect timeout or, when the alert lands between two of its listeners,
 * dies of an uncaught error. The probe says such a refusal at once, as a
 * reason, with a listener on every path.
 */

import { connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";

/** The TLS files' contents (PEM), as the connection uses them. */
export interface TlsMaterial {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

/** How long one probe may take before it gives up and leaves the verdict to the client. */
const PROBE_TIMEOUT_MS = 5_000;

/**
 * Why `server`'s TLS turns this client away, or `null` when it does not, does
 * not ask for TLS, or cannot be reached (then the client says so itself).
 *
 * @param server A server URL (`tls://host:port`, `nats://host:port` or `host:port`).
 * @param tls The CA, certificate and key the client will use.
 * @returns The reason, or `null`.
 */
export function tlsRefusal(server: string, tls: TlsMaterial): Promise<string | null> {
  let url: URL;
  try {
    url = new URL(server.includes("://") ? server : `nats://${server}`);
  } catch {
    return Promise.resolve(null);
  }
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port === "" ? 4222 : Number(url.port);
  return new Promise((resolve) => {
    let settled = false;
    const socket = tcpConnect(port, hostname);
    const finish = (reason: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => finish(null), PROBE_TIMEOUT_MS);
    const gone = () => finish(null);
    socket.on("error", gone);
    socket.on("close", gone);
    let head = "";
    const onInfo = (chunk: Uint8Array) => {
      head += new TextDecoder().decode(chunk);
      const end = head.indexOf("\r\n");
      if (end < 0 && head.length < 65_536) return;
      socket.off("data", onInfo);
      socket.off("close", gone); // From here on the TLS socket's events decide.
      if (!tlsRequired(head.slice(0, end < 0 ? head.length : end))) return finish(null);
      const secure = tlsConnect({
        socket,
        ...(/^[\d.]+$|:/.test(hostname) ? {} : { servername: hostname }),
        ...(tls.ca === undefined ? {} : { ca: tls.ca }),
        ...(tls.cert === undefined ? {} : { cert: tls.cert }),
        ...(tls.key === undefined ? {} : { key: tls.key }),
      });
      secure.on("error", (error: Error) => {
        finish(error.message);
        secure.destroy();
      });
      secure.on("secureConnect", () => secure.write("PING\r\n"));
      secure.on("data", () => { // The server answered: TLS let this client in.
        finish(null);
        secure.destroy();
      });
      // A refusal's alert may come just after the close: let it be said first.
      secure.on("close", () => queueMicrotask(() => setTimeout(gone, 0)));
    };
    socket.on("data", onInfo);
  });
}

/** Whether a server's `INFO {…}` line asks for TLS. */
function tlsRequired(line: string): boolean {
  if (!line.startsWith("INFO ")) return false;
  try {
    const info = JSON.parse(line.slice(5)) as { tls_required?: unknown };
    return info.tls_required === true;
  } catch {
    return false;
  }
}
