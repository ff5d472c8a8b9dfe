/** `bgproc nats-config`: a nats-server configuration with a host role and a worker role (least privilege). */

// deno-lint-ignore-file no-console
import { checkNamespace } from "../nats/_protocol.ts";
import { natsServerConfig, PASSWORD_VARIABLES } from "../nats/_roles.ts";
import type { Command } from "./_command.ts";
import { ExitCode, UsageError } from "./_errors.ts";
import { userPath } from "./_paths.ts";

/** The `nats-config` command. */
export const natsConfigCommand: Command = {
  name: "nats-config",
  summary: "print a nats-server configuration with two roles: hosts (add, kill, read jobs) and workers (run them)",
  usage: "bgproc nats-config [--namespace NAME]… [--server-cert FILE --server-key FILE [--client-ca FILE]] > nats.conf",
  notes: `Hosts may add, kill and read the namespace's jobs and make the namespace; they cannot take a job from
the queue, ack one, say a job's progress or log, or advertise a worker. Workers may take, ack and report jobs
and upload outputs; they cannot add, remove or kill a job, nor make the namespace (start a host first). The
passwords are not in the file: the server reads them from $${PASSWORD_VARIABLES.host} and $${PASSWORD_VARIABLES.worker}
when it starts. A worker may write any job's record; hosts that --trust the workers' keys take only results a
worker signed.`,
  flags: {
    namespace: {
      type: "string",
      multiple: true,
      value: "NAME",
      help: "a namespace the roles may use (default: default)",
    },
    listen: { type: "string", value: "HOST:PORT", help: "where the server listens (default: 0.0.0.0:4222)" },
    "store-dir": { type: "string", value: "DIR", help: "JetStream's store (default: /var/lib/nats)" },
    "host-user": { type: "string", value: "NAME", help: "the hosts' user name (default: bgproc-host)" },
    "worker-user": { type: "string", value: "NAME", help: "the workers' user name (default: bgproc-worker)" },
    "server-cert": { type: "string", value: "FILE", help: "the server's TLS certificate (PEM): TLS on" },
    "server-key": { type: "string", value: "FILE", help: "the key of --server-cert" },
    "client-ca": {
      type: "string",
      value: "FILE",
      help: "with --server-cert: clients must show a certificate it signed",
    },
  },
  run({ flags, positionals }) {
    if (positionals.length > 0) throw new UsageError(`nats-config takes no arguments: got '${positionals[0]}'`);
    const text = (name: string) => typeof flags[name] === "string" ? flags[name] as string : undefined;
    const path = (name: string) => text(name) === undefined ? undefined : userPath(text(name)!);
    const namespaces = Array.isArray(flags.namespace) && flags.namespace.length > 0 ? flags.namespace : ["default"];
    for (const namespace of namespaces) {
      try {
        checkNamespace("Cannot write the configuration", namespace);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
    }
    const [serverCert, serverKey, clientCa] = [path("server-cert"), path("server-key"), path("client-ca")];
    if ((serverCert === undefined) !== (serverKey === undefined)) {
      throw new UsageError("--server-cert and --server-key go together");
    }
    if (clientCa !== undefined && serverCert === undefined) throw new UsageError("--client-ca needs --server-cert");
    const users = [text("host-user") ?? "bgproc-host", text("worker-user") ?? "bgproc-worker"];
    if (users[0] === users[1]) throw new UsageError("--host-user and --worker-user must differ");
    console.log(natsServerConfig({
      namespaces: [...new Set(namespaces.map(String))],
      listen: text("listen") ?? "0.0.0.0:4222",
      storeDir: text("store-dir") ?? "/var/lib/nats",
      hostUser: users[0]!,
      workerUser: users[1]!,
      ...(serverCert === undefined ? {} : { serverCert, serverKey: serverKey! }),
      ...(clientCa === undefined ? {} : { clientCa }),
    }));
    return Promise.resolve(ExitCode.ok);
  },
};
