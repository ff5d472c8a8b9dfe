/**
 * Least privilege on a NATS server: what a host and what a worker of a
 * namespace may publish and subscribe to, and a nats-server configuration
 * with the two roles (`bgproc nats-config`). A host adds, kills and reads
 * jobs; it cannot take a job from the queue, ack one, say a job's progress
 * or log, or advertise a worker. A worker takes, acks and reports jobs; it
 * cannot add a job, remove a queued one, kill one, or make the namespace.
 * Per-job rights (a worker writes only the records of jobs it holds) are
 * beyond subject permissions: signed results (`--trust`) are that check.
 */

import { Names } from "./_protocol.ts";

/** One role's subjects: what it may publish and subscribe to. */
export interface RoleSubjects {
  readonly publish: string[];
  readonly subscribe: string[];
}

/** What both roles read: JetStream's info, the buckets, the files, through their own consumers. */
function readerSubjects(names: Names): string[] {
  const kvJobs = `KV_${names.jobsBucket}`;
  const kvWorkers = `KV_${names.workersBucket}`;
  const files = `OBJ_${names.filesBucket}`;
  const streams = [names.jobsStream, names.deadStream, kvJobs, kvWorkers, files];
  const readable = [kvJobs, kvWorkers, files];
  return [
    "$JS.API.INFO",
    ...streams.map((stream) => `$JS.API.STREAM.INFO.${stream}`),
    ...readable.flatMap((stream) => [
      `$JS.API.STREAM.MSG.GET.${stream}`,
      `$JS.API.DIRECT.GET.${stream}`,
      `$JS.API.DIRECT.GET.${stream}.>`,
      `$JS.API.CONSUMER.CREATE.${stream}`,
      `$JS.API.CONSUMER.CREATE.${stream}.>`,
      `$JS.API.CONSUMER.INFO.${stream}.*`,
      `$JS.API.CONSUMER.DELETE.${stream}.*`,
      `$JS.FC.${stream}.>`,
    ]),
    `$JS.API.CONSUMER.INFO.${names.jobsStream}.*`,
    `$JS.API.STREAM.MSG.GET.${names.jobsStream}`,
    // Both make the durable consumer of the requirement sets they use (idempotent: an existing one is kept).
    `$JS.API.CONSUMER.CREATE.${names.jobsStream}.>`,
    `$JS.API.CONSUMER.DURABLE.CREATE.${names.jobsStream}.*`,
    `$KV.${names.jobsBucket}.>`,
    `$O.${names.filesBucket}.>`,
    `${names.deadSubjects}`,
  ];
}

/**
 * The subjects of a host of `namespace`.
 *
 * @param namespace The checked namespace.
 * @returns What a host publishes and subscribes to.
 */
export function hostSubjects(namespace: string): RoleSubjects {
  const names = new Names(namespace);
  const made = [
    names.jobsStream,
    names.deadStream,
    `KV_${names.jobsBucket}`,
    `KV_${names.workersBucket}`,
    `OBJ_${names.filesBucket}`,
  ];
  return {
    publish: [
      ...readerSubjects(names),
      ...made.map((stream) => `$JS.API.STREAM.CREATE.${stream}`),
      `$JS.API.STREAM.UPDATE.${names.deadStream}`,
      `$JS.API.STREAM.MSG.GET.${names.deadStream}`,
      `$JS.API.STREAM.MSG.DELETE.${names.jobsStream}`,
      `$JS.API.STREAM.PURGE.OBJ_${names.filesBucket}`,
      names.queueSubjects,
      names.allJobsSubject("cancel"),
    ],
    subscribe: [
      "_INBOX.>",
      names.allJobsSubject("progress"),
      names.allJobsSubject("log"),
      // Both dead-letter a job the server gave up (the first to see the advisory does).
      names.maxDeliveriesAdvisory,
    ],
  };
}

/**
 * The subjects of a worker of `namespace`.
 *
 * @param namespace The checked namespace.
 * @returns What a worker publishes and subscribes to.
 */
export function workerSubjects(namespace: string): RoleSubjects {
  const names = new Names(namespace);
  return {
    publish: [
      ...readerSubjects(names),
      `$JS.API.CONSUMER.MSG.NEXT.${names.jobsStream}.*`,
      `$JS.ACK.${names.jobsStream}.>`,
      `$KV.${names.workersBucket}.>`,
      names.allJobsSubject("progress"),
      names.allJobsSubject("log"),
    ],
    // The queue's lanes of priorities other than 0: a worker hears that one has jobs, then pulls from it.
    subscribe: ["_INBOX.>", names.allJobsSubject("cancel"), names.maxDeliveriesAdvisory, names.priorityQueueSubjects],
  };
}

/** What `natsServerConfig` writes. */
export interface ServerConfigOptions {
  /** The namespaces both roles may use. */
  readonly namespaces: readonly string[];
  /** Where the server listens, `host:port`. */
  readonly listen: string;
  /** JetStream's store folder. */
  readonly storeDir: string;
  /** The user names of the two roles. */
  readonly hostUser: string;
  readonly workerUser: string;
  /** The server's certificate and key (PEM files), for TLS. */
  readonly serverCert?: string;
  readonly serverKey?: string;
  /** The CA whose certificates clients must show (TLS that verifies clients). */
  readonly clientCa?: string;
}

/** The environment variables the configuration takes the two passwords from. */
export const PASSWORD_VARIABLES = { host: "BGPROC_HOST_PASSWORD", worker: "BGPROC_WORKER_PASSWORD" } as const;

/**
 * A nats-server configuration with JetStream, optional TLS, and the two
 * roles as users whose passwords the server reads from its environment
 * (`PASSWORD_VARIABLES`), so the file holds no secret.
 *
 * @param options What to write.
 * @returns The file's text.
 */
export function natsServerConfig(options: ServerConfigOptions): string {
  const quote = (text: string) => JSON.stringify(text);
  const list = (subjects: string[], indent: string) =>
    `[\n${[...new Set(subjects)].map((subject) => `${indent}  ${quote(subject)}`).join("\n")}\n${indent}]`;
  const role = (subjects: RoleSubjects[], responses: boolean) => {
    const publish = subjects.flatMap((each) => each.publish);
    const subscribe = subjects.flatMap((each) => each.subscribe);
    return `{\n  publish: ${list(publish, "  ")}\n  subscribe: ${list(subscribe, "  ")}${
      responses ? "\n  allow_responses: true" : ""
    }\n}`;
  };
  const lines = [
    `# nats-server configuration made by \`bgproc nats-config\` for the namespace(s) ${options.namespaces.join(", ")}.`,
    `# Start it with the two passwords in the environment: ${PASSWORD_VARIABLES.host}=… ${PASSWORD_VARIABLES.worker}=… nats-server -c FILE`,
    `listen: ${quote(options.listen)}`,
    `jetstream { store_dir: ${quote(options.storeDir)} }`,
  ];
  if (options.serverCert !== undefined && options.serverKey !== undefined) {
    const verify = options.clientCa === undefined ? "" : `, ca_file: ${quote(options.clientCa)}, verify: true`;
    lines.push(`tls { cert_file: ${quote(options.serverCert)}, key_file: ${quote(options.serverKey)}${verify} }`);
  }
  lines.push(
    "",
    "# Hosts add, kill and read jobs; they cannot take, ack or report one, nor advertise a worker.",
    `BGPROC_HOST = ${role(options.namespaces.map(hostSubjects), false)}`,
    "",
    "# Workers take, run and report jobs; they cannot add, remove or kill one, nor make a namespace.",
    "# (allow_responses: a worker answers a host's kill request on its reply subject.)",
    `BGPROC_WORKER = ${role(options.namespaces.map(workerSubjects), true)}`,
    "",
    "authorization {",
    "  users: [",
    `    { user: ${quote(options.hostUser)}, password: $${PASSWORD_VARIABLES.host}, permissions: $BGPROC_HOST }`,
    `    { user: ${quote(options.workerUser)}, password: $${PASSWORD_VARIABLES.worker}, permissions: $BGPROC_WORKER }`,
    "  ]",
    "}",
    "",
  );
  return lines.join("\n");
}
