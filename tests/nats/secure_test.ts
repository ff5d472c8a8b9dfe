/**
 * A nats-server that lets no one in without credentials, over TLS that verifies clients: certificates made here with
 * `openssl`, users with passwords in files. Hosts (the API and `bgproc run`) and a `bgproc worker` connect with their
 * own credentials; a client without them, or with a wrong password, cannot.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { JobManager } from "../../mod.ts";
import { NatsConnectionError } from "../../src/nats/mod.ts";
import { fixture } from "../_helpers.ts";
import { bgprocCommand, startWorker } from "./_server.ts";
import { clientTls, freePort, makeCertificates, startConfiguredServer } from "./_tls.ts";

Deno.test("a secured cluster: TLS with client certificates and users; hosts and a worker get in with theirs, no one else does", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bgproc-nats-secure-" });
  let server: Deno.ChildProcess | undefined;
  try {
    await makeCertificates(dir);
    const port = freePort();
    await Deno.writeTextFile(
      join(dir, "nats.conf"),
      `listen: 127.0.0.1:${port}
jetstream { store_dir: "${join(dir, "store")}" }
tls { cert_file: "${join(dir, "server.pem")}", key_file: "${join(dir, "server-key.pem")}", ca_file: "${
        join(dir, "ca.pem")
      }", verify: true, timeout: 5 }
authorization { users: [ { user: host, password: "host-secret" }, { user: worker, password: "worker-secret" } ] }
`,
    );
    await Deno.writeTextFile(join(dir, "host.pass"), "host-secret\n");
    await Deno.writeTextFile(join(dir, "worker.pass"), "worker-secret\n");
    server = await startConfiguredServer(dir, port);
    const url = `tls://127.0.0.1:${port}`;
    const tls = clientTls(dir);
    const tlsFlags = ["--tls-ca", tls.ca, "--tls-cert", tls.cert, "--tls-key", tls.key];

    // Not trusting the server's CA, no client certificate, or a wrong password: not in, and told why at once (the
    // refused certificate used to wait for the client's timeout, or crash the process with an uncaught TLS alert).
    const strangers: [Record<string, unknown>, RegExp][] = [
      [{ servers: url }, /does not trust the server's certificate; give the CA/],
      [{ servers: url, tls: { ca: tls.ca }, user: "host", pass: "host-secret" }, /wants a client certificate/],
      [
        { servers: url, tls, user: "host", pass: "wrong" },
        /Authorization Violation \(the server refused these credentials: check the user/,
      ],
    ];
    for (const [nats, why] of strangers) {
      for (let i = 0; i < 5; i++) { // A race lived here: try it more than once.
        const stranger = new JobManager({ nats: { servers: url, ...nats, namespace: "secure" } });
        await assert.rejects(
          stranger.ready(),
          (error) => error instanceof NatsConnectionError && why.test(error.message),
        );
        await stranger.close();
      }
    }

    await using _worker = await startWorker(url, [
      "--namespace",
      "secure",
      "--workers",
      "1",
      ...tlsFlags,
      "--user",
      "worker",
      "--password-file",
      join(dir, "worker.pass"),
    ]);
    {
      await using host = new JobManager({
        nats: { servers: url, namespace: "secure", tls, user: "host", pass: "host-secret" },
      });
      const job = host.addJob({ name: "secured", script: fixture("echo.py"), passedData: { via: "api" } });
      assert.deepEqual((await job.result()).pythonData.passed_data, { via: "api" });
    }

    const run = (extra: string[]) =>
      bgprocCommand(["run", fixture("echo.py"), "--nats", url, "--namespace", "secure", ...tlsFlags, ...extra], {
        stdout: "piped",
        stderr: "piped",
      }).output();
    const viaCli = await run(["--user", "host", "--password-file", join(dir, "host.pass")]);
    assert.equal(viaCli.code, 0, new TextDecoder().decode(viaCli.stderr));
    const noPassword = await run(["--user", "host"]);
    assert.equal(noPassword.code, 2);
    assert.match(new TextDecoder().decode(noPassword.stderr), /--user needs its password/);
  } finally {
    if (server !== undefined) {
      server.kill("SIGTERM");
      await server.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
});
