/** TLS material for the NATS tests, made with `openssl` (from apt): a CA and the certificates it signed. */

import { join } from "node:path";
import { natsServerPath } from "./_server.ts";

/** Run openssl with `args` in `dir`; throws with its stderr when it fails. */
async function openssl(dir: string, args: string[]): Promise<void> {
  const output = await new Deno.Command("openssl", { args, cwd: dir, stdin: "null", stdout: "null", stderr: "piped" })
    .output();
  if (!output.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(output.stderr)}`);
}

/**
 * A CA, and a server and a client certificate it signed (the server's for 127.0.0.1), in `dir`: ca.pem,
 * server.pem, server-key.pem, client.pem, client-key.pem.
 */
export async function makeCertificates(dir: string): Promise<void> {
  const days = ["-days", "2"];
  await openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca-key.pem",
    "-out",
    "ca.pem",
    ...days,
    "-subj",
    "/CN=bgproc test CA",
  ]);
  for (
    const [name, extension] of [["server", "subjectAltName=IP:127.0.0.1,DNS:localhost"], [
      "client",
      "extendedKeyUsage=clientAuth",
    ]]
  ) {
    await openssl(dir, [
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}-key.pem`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=bgproc ${name}`,
    ]);
    await Deno.writeTextFile(join(dir, `${name}.ext`), `${extension}\n`);
    await openssl(dir, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca-key.pem",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      ...days,
      "-extfile",
      `${name}.ext`,
    ]);
  }
}

/** A loopback port no one listens on now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Wait until something listens on loopback `port` (at most 15 s). */
export async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 150; i++) {
    const connection = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => null);
    if (connection !== null) {
      connection.close();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

/** The client's TLS files `makeCertificates` made in `dir`. */
export function clientTls(dir: string): { ca: string; cert: string; key: string } {
  return { ca: join(dir, "ca.pem"), cert: join(dir, "client.pem"), key: join(dir, "client-key.pem") };
}

/**
 * Start nats-server with `dir`/nats.conf (its `listen` on loopback `port`), the environment `env`, its log in `log`
 * when given; settles once it listens. The caller stops it (SIGTERM, then its status).
 */
export async function startConfiguredServer(
  dir: string,
  port: number,
  options: { env?: Record<string, string>; log?: string } = {},
): Promise<Deno.ChildProcess> {
  const server = new Deno.Command(natsServerPath(), {
    args: ["-c", join(dir, "nats.conf"), ...(options.log === undefined ? [] : ["-l", options.log])],
    ...(options.env === undefined ? {} : { env: options.env }),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitForPort(port);
  } catch (error) {
    server.kill("SIGKILL");
    await server.status;
    throw error;
  }
  return server;
}
