/**
 * Connecting to NATS and making (idempotently) what a namespace needs: the
 * work-queue stream, the dead-letter stream, the jobs and workers KV
 * buckets, the file object store, and durable pull consumers.
 */

import {
  type Authenticator,
  connect,
  credsAuthenticator,
  type NatsConnection,
  nkeyAuthenticator,
  type TlsOptions,
} from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { type ObjectStore, Objm } from "@nats-io/obj";
import type { NatsCredentials } from "../api/options.ts";
import { Names } from "./_protocol.ts";
import { NatsConnectionError } from "./errors.ts";
import { type TlsMaterial, tlsRefusal } from "./_tls_probe.ts";

/** How a host or worker reaches NATS. */
export interface NatsOptions extends NatsCredentials {
  /** Server URL(s), e.g. `"nats://127.0.0.1:4222"` (`tls://…` for TLS). */
  servers: string | string[];
  /** Jobs, names, workers and files are separate per namespace. @default {"default"} */
  namespace?: string;
  /** Client name shown by the server. */
  name?: string;
}

/** An open connection with a namespace's resources. */
export interface Cluster {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly names: Names;
  readonly jobs: KV;
  readonly workers: KV;
  readonly files: ObjectStore;
  readonly url: string;
}

/** Queue consumer settings shared by hosts and workers of a namespace. */
export interface QueueSettings {
  /** How long a delivered job may go without a heartbeat before it is redelivered, ms. */
  readonly ackWaitMs: number;
  /** Deliveries before the server gives a job up (then the max-deliveries advisory). */
  readonly maxDeliver: number;
}

/** The most the dead-letter stream holds; the oldest letters go first. */
export const DEAD_LETTER_BYTES = 256 * 1024 * 1024;

/** How long a worker's advertisement lives without a refresh. */
export const WORKER_TTL_MS = 5_000;

/**
 * Connect and make the namespace's streams, buckets and object store.
 *
 * @param options Where and who.
 * @param namespace The checked namespace.
 * @returns The connection and resources.
 * @throws {NatsConnectionError} When the server cannot be reached or lacks JetStream.
 */
export async function openCluster(options: NatsOptions, namespace: string): Promise<Cluster> {
  const url = Array.isArray(options.servers) ? options.servers.join(",") : String(options.servers);
  let nc: NatsConnection;
  const auth = await authOptions(url, options);
  for (const server of Array.isArray(options.servers) ? options.servers : [options.servers]) {
    const refusal = await tlsRefusal(String(server), auth.tls ?? {});
    if (refusal !== null) throw new NatsConnectionError(url, tlsAdvice(refusal, auth.tls), {});
  }
  try {
    nc = await connect({
      servers: options.servers,
      ...(options.name === undefined ? {} : { name: options.name }),
      ...(options.user === undefined ? {} : { user: options.user }),
      ...(options.pass === undefined ? {} : { pass: options.pass }),
      ...(options.token === undefined ? {} : { token: options.token }),
      ...auth,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const hint = /Authorization Violation/i.test(message)
      ? " (the server refused these credentials: check the user and its password, or the token, creds or NKey " +
        "file: --user with --password-file or $BGPROC_NATS_PASSWORD, --token-file, --creds, --nkey-seed)"
      : "";
    throw new NatsConnectionError(url, `${message}${hint}`, { cause: error });
  }
  try {
    const names = new Names(namespace);
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await ensureStream(jsm, {
      name: names.jobsStream,
      subjects: [names.queueSubjects],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
    });
    await ensureStream(jsm, {
      name: names.deadStream,
      subjects: [names.deadSubjects],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      // Bounded: a flood of dead letters (a hostile client with publish rights) pushes out the oldest, never the disk.
      max_bytes: DEAD_LETTER_BYTES,
      discard: DiscardPolicy.Old,
    });
    // A namespace made before the bound: bounded now (a host may; a worker's role may not, and leaves it to one).
    const dead = await jsm.streams.info(names.deadStream);
    if (dead.config.max_bytes !== DEAD_LETTER_BYTES) {
      await jsm.streams.update(names.deadStream, { max_bytes: DEAD_LETTER_BYTES, discard: DiscardPolicy.Old })
        .catch(() => {});
    }
    const kvm = new Kvm(js);
    const jobs = await kvm.create(names.jobsBucket, { history: 1 });
    const workers = await kvm.create(names.workersBucket, { history: 1, ttl: WORKER_TTL_MS });
    const files = await new Objm(js).create(names.filesBucket);
    return { nc, js, jsm, names, jobs, workers, files, url };
  } catch (error) {
    await nc.close().catch(() => {});
    const message = error instanceof Error ? error.message : String(error);
    const denied = /Permissions Violation for Publish to "\$JS\.API\.STREAM\.(CREATE|INFO)\./.test(message);
    throw new NatsConnectionError(
      url,
      denied
        ? `the namespace "${namespace}" is not made yet, and these credentials may not make it (a worker's may not: ` +
          `start a host of the namespace first): ${message}`
        : message,
      { cause: error },
    );
  }
}

/**
 * Say what a role was refused, when `error` is the server refusing a subject
 * (its `Permissions Violation`), as a `NatsConnectionError`.
 *
 * @param url The server URL(s).
 * @param error What the client threw.
 * @param doing What these credentials were used for, e.g. `"add jobs"`.
 * @returns The explained error, or `error` itself when it is not a refusal.
 */
export function explainRefusal(url: string, error: unknown, doing: string): unknown {
  const message = error instanceof Error ? error.message : String(error);
  if (!/Permissions Violation/.test(message)) return error;
  return new NatsConnectionError(url, `these credentials may not ${doing}: ${message}`, { cause: error });
}

async function ensureStream(
  jsm: JetStreamManager,
  config: Parameters<JetStreamManager["streams"]["add"]>[0],
): Promise<void> {
  try {
    await jsm.streams.info(config.name);
  } catch {
    try {
      await jsm.streams.add(config);
    } catch (error) {
      // Another host or worker made it in between.
      await jsm.streams.info(config.name).catch(() => Promise.reject(error));
    }
  }
}

/**
 * Make the durable pull consumer of one lane: one requirement set at one
 * priority (idempotent; an existing consumer keeps its settings, except that
 * a larger MaxDeliver is raised to). A lane of a priority other than 0 is
 * removed by the server after {@linkcode LANE_IDLE_MS} without a pull (made
 * again, with what its subject still holds, when a job is queued there).
 *
 * @param cluster The namespace.
 * @param requires The sorted tags the consumer's jobs require.
 * @param settings Ack wait and MaxDeliver.
 * @param priority The lane's priority.
 * @returns The consumer's name.
 */
export async function ensureConsumer(
  cluster: Cluster,
  requires: readonly string[],
  settings: QueueSettings,
  priority = 0,
): Promise<string> {
  const { jsm, names } = cluster;
  const name = names.consumerName(requires, priority);
  const existing = await jsm.consumers.info(names.jobsStream, name).catch(() => null);
  if (existing !== null) {
    if (existing.config.max_deliver !== undefined && existing.config.max_deliver < settings.maxDeliver) {
      await jsm.consumers.update(names.jobsStream, name, { max_deliver: settings.maxDeliver }).catch(() => {});
    }
    return name;
  }
  try {
    await jsm.consumers.add(names.jobsStream, {
      durable_name: name,
      filter_subject: names.queueSubject(requires, priority),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: settings.ackWaitMs * 1_000_000,
      max_deliver: settings.maxDeliver,
      ...(priority === 0 ? {} : { inactive_threshold: LANE_IDLE_MS * 1_000_000 }),
    });
  } catch (error) {
    // Another host or worker made it in between.
    await jsm.consumers.info(names.jobsStream, name).catch(() => Promise.reject(error));
  }
  return name;
}

/** How long the consumer of a lane of a priority other than 0 lives without a pull (then the server removes it). */
export const LANE_IDLE_MS = 24 * 60 * 60_000;

/** What to say when TLS between this client and the server failed. */
function tlsAdvice(refusal: string, tls: TlsMaterial | undefined): string {
  if (/alert/i.test(refusal)) { // The server said no.
    return tls?.cert === undefined
      ? `the server wants a client certificate (tls.cert and tls.key; --tls-cert and --tls-key): ${refusal}`
      : `the server refused this client's certificate: ${refusal}`;
  }
  return tls?.ca === undefined
    ? `this client does not trust the server's certificate; give the CA that signed it (tls.ca; --tls-ca): ${refusal}`
    : `this client does not trust the server's certificate: ${refusal}`;
}

/** The authenticator and TLS settings the credentials' files make; a file that cannot be read is a connection error. */
async function authOptions(
  url: string,
  credentials: NatsCredentials,
): Promise<{ authenticator?: Authenticator; tls?: TlsOptions }> {
  const read = async (what: string, path: string) => {
    try {
      return await Deno.readFile(path);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new NatsConnectionError(url, `the ${what} ${path} cannot be read: ${why}`, { cause: error });
    }
  };
  let authenticator: Authenticator | undefined;
  if (credentials.creds !== undefined) {
    authenticator = credsAuthenticator(await read("credentials file", credentials.creds));
  }
  if (credentials.nkeySeed !== undefined) {
    const seed = new TextDecoder().decode(await read("NKey seed file", credentials.nkeySeed)).trim();
    authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
  }
  let tls: TlsOptions | undefined;
  if (credentials.tls !== undefined) {
    const { ca, cert, key } = credentials.tls;
    // Read here, so a missing file is said as such (and the client gets the contents, not paths).
    const text = async (what: string, path: string) => new TextDecoder().decode(await read(what, path));
    tls = {
      ...(ca === undefined ? {} : { ca: await text("TLS CA file", ca) }),
      ...(cert === undefined ? {} : { cert: await text("TLS certificate file", cert) }),
      ...(key === undefined ? {} : { key: await text("TLS key file", key) }),
    };
  }
  return { ...(authenticator === undefined ? {} : { authenticator }), ...(tls === undefined ? {} : { tls }) };
}
