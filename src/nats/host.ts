/**
 * The NATS backend's host side: jobs go to a namespace's JetStream work queue, their records live in KV (so a
 * restarted or second host finds them by name), files go through the object store by SHA-256, and progress, log
 * lines and cancels travel on per-job subjects. The records and their watch become the facade's job events.
 */

import { join } from "node:path";
import type { KvWatchEntry } from "@nats-io/kv";
import type { QueuedIterator, Subscription } from "@nats-io/transport-node";
import type { CheckedJob } from "../api/checked_job.ts";
import type { BackendEvent, BackendSettings } from "../backend.ts";
import { JobDroppedError } from "../errors.ts";
import type { JobResult, ManagerHealth } from "../types.ts";
import { type Cluster, explainRefusal, type NatsOptions, openCluster } from "./_connection.ts";
import { listenMaxDeliveries } from "./_dead_letter.ts";
import { OverdueWatch } from "./_overdue.ts";
import { FileCache, Uploader } from "./_files.ts";
import { HealthWatch } from "./_health.ts";
import { LogFiles } from "./_log_files.ts";
import { encode, type JobRecord, type JobSpec, nameOfToken, subjectToken, type WorkerInfo } from "./_protocol.ts";
import { ended, isWrongRevision, mutateRecord, readRecord } from "./_records.ts";
import { fetchResult } from "./_fetch_result.ts";
import { recordTimings } from "./_timings.ts";
import { DependencyCache } from "../deps/cache.ts";
import { killInCluster } from "./_kill.ts";
import { Submitter } from "./_submit.ts";
import { readJobRecord, readLogLine, readProgress, Unreadable } from "./_wire.ts";
import { UnreadableDesk } from "./_unreadable.ts";
import { AbandonedWatch } from "./_abandoned.ts";
import { detailsBeforeBlender } from "../_dropped.ts";
import { loadSigning, signedEnd, signedProgress, type Signing, whyUntrusted } from "./_signing.ts";
import type { NatsSigningOptions } from "../api/options.ts";

/** What the host knows of one job of the namespace. */
interface Tracked {
  readonly id: string;
  state: JobRecord["state"];
  attempts: number;
  progress: number;
  worker: string | null;
  submittedAt: string;
  /** This host's `outputDir` for the job, when this host added it. */
  readonly outputDir: string | null;
  /** Whether this host added it: its result is fetched as it completes (another host's when asked for). */
  readonly mine: boolean;
  /** Where this host queued its message (0 until then, or when another host added it). */
  queueSeq: number;
  readonly ended: PromiseWithResolvers<void>;
  /** Its submission (this host's job): settles once it was queued, or failed to be. */
  submitted?: Promise<void>;
  /** Its record's move count as this host last saw it (`setPriority`). */
  moves: number;
}

/** The host's settings. */
export interface NatsHostSettings {
  readonly maxAttempts: number;
  readonly retry: JobSpec["retry"];
  readonly ackWaitMs: number;
  /** This host's folder (made by the caller, removed by it). */
  readonly workRoot: string;
  /** The largest result (its python data, or the spilled file holding it) this host reads, in bytes. */
  readonly resultLimit: number;
  /** Its key files: jobs signed with `key`; results taken only when signed by a key in `trust`. */
  readonly signing?: NatsSigningOptions | undefined;
  /** The Blender of this machine that lists what a job's .blend uses (`blender` option), when one was given. */
  readonly blender?: string | undefined;
}

/** A host of one namespace: submits jobs, follows every job's record, fetches results. */
export class NatsHost {
  readonly namespace: string;
  readonly #cluster: Cluster;
  readonly #settings: NatsHostSettings;
  #maxAttempts: number;
  readonly #publish: (event: BackendEvent) => void;
  readonly #jobs = new Map<string, Tracked>();
  readonly #submissions = new Set<Promise<void>>();
  readonly #forgetting = new Map<string, Promise<void>>();
  /** Results of this host's jobs being fetched: `close()` waits for them. */
  readonly #fetches = new Set<Promise<JobResult>>();
  /** Stale queue messages of this host's jobs being removed (`#tidy`). */
  readonly #removals = new Set<Promise<void>>();
  readonly #uploader: Uploader;
  readonly #downloads: FileCache;
  readonly #submitter: Submitter;
  readonly #subscriptions: Subscription[] = [];
  readonly #watches: QueuedIterator<KvWatchEntry>[] = [];
  readonly #health: HealthWatch;
  readonly #unreadable: UnreadableDesk;
  readonly #signing: Signing;
  readonly #abandoned: AbandonedWatch;
  readonly #overdue: OverdueWatch;
  readonly #logFiles = new LogFiles();
  #logSubscription: Subscription | undefined;
  #closing: Promise<void> | undefined;

  private constructor(
    cluster: Cluster,
    settings: NatsHostSettings,
    signing: Signing,
    publish: (event: BackendEvent) => void,
  ) {
    this.#cluster = cluster;
    this.#signing = signing;
    this.namespace = cluster.names.namespace;
    this.#settings = settings;
    this.#maxAttempts = settings.maxAttempts;
    this.#publish = publish;
    this.#uploader = new Uploader(cluster.files);
    // A listing that hangs (a .blend that hangs Blender) ends at its timeout (a minute): submissions, and so kills
    // and close(), never wait longer for it.
    const dependencies = new DependencyCache({
      workDir: settings.workRoot,
      ...(settings.blender === undefined ? {} : { blender: settings.blender }),
    });
    this.#submitter = new Submitter(
      cluster,
      this.#uploader,
      { ...settings, dependencies },
      () => this.#maxAttempts,
      signing.key,
    );
    this.#downloads = new FileCache(cluster.files, join(settings.workRoot, "files"));
    this.#unreadable = new UnreadableDesk(cluster, `host ${Deno.pid}`, (unreadable) => {
      publish({ type: "unreadable", ...unreadable });
    });
    this.#abandoned = new AbandonedWatch(cluster, () => this.#ownQueued());
    // A worker ends its own attempts at their timeout; this host ends one the worker did not, well after.
    this.#overdue = new OverdueWatch(cluster, 2 * settings.ackWaitMs + 5_000, () => {});
    this.#health = new HealthWatch(cluster, () => this.#queuedRequirements(), (health) => {
      publish({ type: "health", health });
    }, this.#unreadable);
  }

  /** Connect, and make every job of the namespace known through `publish`. */
  static async connect(
    options: NatsOptions,
    namespace: string,
    settings: NatsHostSettings,
    publish: (event: BackendEvent) => void,
  ): Promise<NatsHost> {
    const signing = await loadSigning(settings.signing); // A bad key file fails here, before connecting.
    const cluster = await openCluster({ name: "bgproc-host", ...options }, namespace);
    const host = new NatsHost(cluster, settings, signing, publish);
    try {
      await host.#start();
    } catch (error) {
      await host.close();
      throw error;
    }
    return host;
  }

  async #start(): Promise<void> {
    const { jobs, nc, names } = this.#cluster;
    // Every record now, oldest first, then every change (the watch repeats the last values: applying one twice is
    // harmless).
    const records: JobRecord[] = [];
    for await (const key of await jobs.keys()) {
      const name = nameOfToken(key);
      const current = name === undefined ? null : await readRecord(jobs, name);
      if (current !== null && current.record.name === name) records.push(current.record);
    }
    records.sort((a, b) => a.submittedAt.localeCompare(b.submittedAt));
    for (const record of records) if (await this.#trusted(record, `kv:${names.jobsBucket}`)) this.#apply(record);
    const jobWatch = await jobs.watch();
    this.#watches.push(jobWatch);
    void (async () => {
      for await (const entry of jobWatch) {
        const name = nameOfToken(entry.key);
        if (name === undefined) continue;
        if (entry.operation !== "PUT") {
          const tracked = this.#jobs.get(name);
          // An ended job removed, or another host's job that never got queued (its host freed the name).
          if (tracked !== undefined && (ended(tracked) || (!tracked.mine && tracked.state === "QUEUED"))) {
            this.#jobs.delete(name);
            this.#publish({ type: "forgotten", name });
          }
          continue;
        }
        const record = readJobRecord(entry.value);
        if (record instanceof Unreadable) {
          this.#unreadable.report(`kv:${names.jobsBucket}/${entry.key}`, record, entry.value);
        } else if (record.name === name && await this.#trusted(record, `kv:${names.jobsBucket}/${entry.key}`)) {
          this.#apply(record);
        }
      }
    })().catch(() => {});
    await this.#health.start();
    this.#subscriptions.push(nc.subscribe(names.allJobsSubject("progress"), {
      callback: (error, msg) => {
        const about = error === null ? this.#runningJob(msg.subject) : undefined;
        const progress = about === undefined ? null : readProgress(msg.data);
        if (progress instanceof Unreadable) return this.#unreadable.report(msg.subject, progress, msg.data);
        if (about === undefined || progress === null || !ofSubmission(progress, about.tracked)) return;
        if (progress.attempt < about.tracked.attempts) return;
        const { trusted } = this.#signing;
        if (trusted === undefined) return this.#progress(about.name, about.tracked, progress.value);
        // Taken only when a trusted worker signed it, for this job, submission and attempt.
        const { name, tracked } = about;
        const signed = signedProgress({
          name,
          id: tracked.id,
          attempt: progress.attempt,
          value: progress.value,
          worker: progress.worker ?? "",
        });
        void whyUntrusted(trusted, signed, progress.sig).then((why) => {
          if (why === null) return this.#progress(name, tracked, progress.value);
          const problem = new Unreadable(`a progress value no trusted worker signed: ${why}`);
          this.#unreadable.report(msg.subject, problem, msg.data);
        });
      },
    }));
    this.#subscriptions.push(listenMaxDeliveries(this.#cluster, this.#unreadable, () => {}, true));
    this.#abandoned.start(this.#settings.ackWaitMs);
  }

  /** This host's queued jobs, oldest first. */
  #ownQueued(): { name: string; seq: number }[] {
    return [...this.#jobs].filter(([, tracked]) => tracked.mine && tracked.state === "QUEUED")
      .sort(([, a], [, b]) => a.submittedAt.localeCompare(b.submittedAt))
      .map(([name, tracked]) => ({ name, seq: tracked.queueSeq }));
  }

  /**
   * Whether a record may be taken: with trusted worker keys, a completed one only when one of them signed its end
   * (else it is reported as unreadable and skipped: the job does not complete). Queued, active and dropped records
   * change nothing a forger could use, and hosts write some of them (a kill, a lost worker).
   */
  async #trusted(record: JobRecord, where: string): Promise<boolean> {
    const { trusted } = this.#signing;
    if (trusted === undefined || record.state !== "COMPLETED") return true;
    const why = await whyUntrusted(trusted, signedEnd(record), record.endSignature);
    if (why === null) return true;
    const bytes = encode(record);
    this.#unreadable.report(
      where.includes("/") ? where : `${where}/${subjectToken(record.name)}`,
      new Unreadable(`a completed job record not signed by a trusted worker: ${why}`),
      bytes,
    );
    void this.#restore(record);
    return false;
  }

  /**
   * Put back the record of a job that a forged completion ended, as this host last knew it (queued, or active on its
   * worker), so that its real end can still be written: else the worker would find it ended and the job would never
   * end here. Only while the record is still that forged one.
   */
  async #restore(forged: JobRecord): Promise<void> {
    const tracked = this.#jobs.get(forged.name);
    if (tracked === undefined || tracked.id !== forged.id || ended(tracked)) return;
    await mutateRecord(this.#cluster.jobs, forged.name, (current) => {
      if (current.id !== forged.id || current.state !== "COMPLETED") return null;
      if (current.endSignature?.sig !== forged.endSignature?.sig) return null;
      const { endSignature: _, ...rest } = current;
      return { ...rest, state: tracked.state === "ACTIVE" ? "ACTIVE" : "QUEUED", worker: tracked.worker, result: null };
    }).catch(() => {});
  }

  /** A record's new version: the events its change makes. */
  #apply(record: JobRecord): void {
    const { name } = record;
    let tracked = this.#jobs.get(name);
    if (tracked === undefined || (tracked.id !== record.id && ended(tracked))) {
      // Another host's job (or one recorded before this host connected).
      tracked = this.#track(record, null, false);
      tracked.state = record.state === "ACTIVE" ? "ACTIVE" : "QUEUED";
      tracked.attempts = record.attempts;
      tracked.worker = record.worker;
      this.#jobs.set(name, tracked);
      this.#publish({ type: "known", name, state: record.state, attempts: record.attempts, progress: record.progress });
    }
    if (tracked.id !== record.id || ended(tracked)) return;
    if (tracked.mine) {
      this.#overdue.see(record);
      this.#tidy(tracked, record);
    }
    tracked.worker = record.worker;
    tracked.submittedAt = record.submittedAt;
    if (record.state === "ACTIVE" && (tracked.state !== "ACTIVE" || record.attempts > tracked.attempts)) {
      if (tracked.state === "ACTIVE") this.#publish({ type: "retrying", name });
      tracked.state = "ACTIVE";
      tracked.attempts = record.attempts;
      this.#publish({ type: "started", name, attempt: record.attempts });
    } else if (record.state === "QUEUED" && tracked.state === "ACTIVE") {
      tracked.state = "QUEUED";
      this.#publish({ type: "retrying", name });
    }
    // A record's progress is nobody's signature: with trusted workers, only their signed messages count.
    if (record.state === "ACTIVE" && this.#signing.trusted === undefined) {
      this.#progress(name, tracked, record.progress);
    }
    if (record.state === "COMPLETED") this.#completed(tracked, record);
    else if (record.state === "DROPPED") this.#dropped(tracked, record);
  }

  /**
   * Keep knowing where this host's job's message is, and remove one that went stale because another host moved or
   * killed the job while it was queued (that host does not know where the message is; a worker would drop it too).
   */
  #tidy(tracked: Tracked, record: JobRecord): void {
    const stale = (seq: number) => {
      const { jsm, names } = this.#cluster;
      if (seq <= 0) return;
      const removing = jsm.streams.deleteMessage(names.jobsStream, seq).then(() => {}, () => {});
      this.#removals.add(removing); // close() waits for it.
      void removing.finally(() => this.#removals.delete(removing));
    };
    const moves = record.moves ?? 0;
    if (moves > tracked.moves) {
      tracked.moves = moves;
      if (tracked.queueSeq !== record.queueSeq) stale(tracked.queueSeq);
      tracked.queueSeq = record.queueSeq;
    } else if (record.state === "QUEUED" && record.queueSeq > 0) {
      tracked.queueSeq = record.queueSeq;
    } else if (ended(record) && record.attempts === 0) {
      stale(tracked.queueSeq); // Killed while queued: its message goes too.
    }
  }

  #track(record: { id: string; submittedAt: string }, outputDir: string | null, mine: boolean): Tracked {
    const tracked: Tracked = {
      mine,
      queueSeq: 0,
      moves: 0,
      id: record.id,
      state: "QUEUED",
      attempts: 0,
      progress: 0,
      worker: null,
      submittedAt: record.submittedAt,
      outputDir,
      ended: Promise.withResolvers<void>(),
    };
    return tracked;
  }

  #progress(name: string, tracked: Tracked, value: number): void {
    if (!(value > tracked.progress) || value > 1) return;
    tracked.progress = value;
    this.#publish({ type: "progress", name, value });
  }

  #completed(tracked: Tracked, record: JobRecord): void {
    const size = resultSize(record);
    if (size > this.#settings.resultLimit) {
      // As a local job's: never read, the job dropped (its record stays as the worker wrote it).
      const summary =
        `the job's result is ${size} bytes, more than the manager's resultLimit of ${this.#settings.resultLimit}`;
      return this.#dropped(tracked, {
        ...record,
        report: detailsBeforeBlender(record.name, "result-too-large", summary, record.attempts),
      });
    }
    tracked.state = "COMPLETED";
    tracked.attempts = record.attempts;
    const { name, attempts } = record;
    const timings = recordTimings(record);
    const fetch = () =>
      fetchResult(record, tracked.outputDir, this.#ownFolder(name, tracked), this.#downloads, this.#settings.workRoot);
    if (!tracked.mine) {
      // Another host's job: fetched when asked for (a failure is not kept: the next ask tries again).
      let loading: Promise<JobResult> | undefined;
      const load = () =>
        loading ??= fetch().catch((error) => {
          loading = undefined;
          throw error;
        });
      this.#publish({ type: "completed", name, attempts, timings, load });
      return this.#end(name, tracked);
    }
    // This host's: its outputs are in place by the time it is seen COMPLETED, as a local job's are.
    const fetched = fetch();
    this.#fetches.add(fetched);
    void fetched.then(
      (result) => this.#publish({ type: "completed", name, attempts, timings, load: () => Promise.resolve(result) }),
      (error) => this.#publish({ type: "completed", name, attempts, timings, load: () => Promise.reject(error) }),
    ).finally(() => {
      this.#fetches.delete(fetched);
      this.#end(name, tracked);
    });
  }

  #dropped(tracked: Tracked, record: JobRecord): void {
    tracked.state = "DROPPED";
    tracked.attempts = record.attempts;
    const { name } = record;
    let error: JobDroppedError | undefined;
    try {
      error = record.report === null ? undefined : new JobDroppedError(record.report);
    } catch {
      // A report this bgproc cannot read (garbage, or another version's): the job is still dropped.
    }
    if (error === undefined) {
      this.#publish({
        type: "rejected",
        name,
        error: new Error(`Job '${name}' was dropped without a report it can read`),
      });
    } else this.#publish({ type: "dropped", name, error, timings: recordTimings(record) });
    this.#end(name, tracked);
  }

  #end(name: string, tracked: Tracked): void {
    this.#overdue.forget(name);
    tracked.ended.resolve();
    this.#logFiles.end(name);
  }

  /** Which tags the queued jobs of this host require (for `health`). */
  #queuedRequirements(): Map<string, readonly string[]> {
    const required = new Map<string, readonly string[]>();
    for (const [name, requires] of this.#requires) {
      const tracked = this.#jobs.get(name);
      if (tracked !== undefined && tracked.state === "QUEUED") required.set(name, requires);
      else this.#requires.delete(name);
    }
    return required;
  }

  readonly #requires = new Map<string, readonly string[]>();

  get health(): ManagerHealth {
    return this.#health.current;
  }

  get availableWorkers(): number {
    let available = 0;
    for (const worker of this.#health.liveWorkers()) available += Math.max(0, worker.slots - worker.running.length);
    return available;
  }

  /** The live workers of the namespace. */
  liveWorkers(): WorkerInfo[] {
    return this.#health.liveWorkers();
  }

  /** The worker a job runs on (or ended on), or `null`. */
  workerOf(name: string): string | null {
    return this.#jobs.get(name)?.worker ?? null;
  }

  /** The cluster (for dead letters, file statistics and collection). */
  get cluster(): Cluster {
    return this.#cluster;
  }

  /** How many files this host uploaded, and how many the store already had. */
  get uploader(): Uploader {
    return this.#uploader;
  }

  configure(settings: BackendSettings): void {
    if (settings.maxWorkers !== undefined) {
      throw new Error("Cannot set maxWorkers with nats: the workers have their slots");
    }
    if (settings.maxAttempts !== undefined) this.#maxAttempts = settings.maxAttempts;
  }

  /** Put `job` in the cluster: its files, its record, its queue message. */
  submit(job: CheckedJob): void {
    const id = crypto.randomUUID();
    const now = new Date().toISOString();
    const { name } = job;
    const tracked = this.#track({ id, submittedAt: now }, job.outputDir, true);
    this.#jobs.set(name, tracked);
    this.#requires.set(name, job.requires);
    if (job.logFile !== null) {
      this.#logFiles.open(name, job.logFile, () => this.#jobs.get(name)?.worker ?? null);
      this.wantLogs();
    }
    const submission = this.#submitter.put(job, id, now, job.maxAttempts ?? this.#maxAttempts).then((seq) => {
      tracked.queueSeq = seq;
    }, (error) => {
      if (this.#jobs.get(name) === tracked) this.#jobs.delete(name);
      this.#logFiles.end(name);
      tracked.ended.resolve();
      const refused = explainRefusal(this.#cluster.url, error, "add jobs (are they a worker's?)");
      this.#publish({ type: "rejected", name, error: refused instanceof Error ? refused : new Error(String(refused)) });
    });
    this.#submissions.add(submission);
    tracked.submitted = submission;
    void submission.finally(() => this.#submissions.delete(submission));
  }

  /**
   * Change a queued job's priority: its message moves to the lane of that priority (`Submitter.move`).
   *
   * @returns Whether it was still queued.
   */
  async reprioritize(name: string, priority: number): Promise<boolean> {
    const tracked = this.#jobs.get(name);
    await tracked?.submitted; // Only its own: others may be uploading large files.
    if (tracked === undefined || ended(tracked)) return false;
    const seq = await this.#submitter.move(name, priority, tracked.queueSeq);
    if (seq === null) return false;
    if (seq > 0) tracked.queueSeq = seq;
    return true;
  }

  /**
   * Kill a job: a queued one is removed from the queue, a running one is killed on its worker (with its process
   * group). Either way it ends as DROPPED with reason `"killed"`. Settles once its record says it ended.
   */
  async kill(name: string): Promise<void> {
    await Promise.allSettled([...this.#submissions]);
    const tracked = this.#jobs.get(name);
    if (tracked === undefined || ended(tracked)) return;
    const written = await killInCluster(this.#cluster, name, tracked.id, tracked.queueSeq);
    if (written !== null) this.#apply(written);
    await this.#whenEnded(tracked);
  }

  /** Settles once the job has ended, or this host closed. */
  #whenEnded(tracked: Tracked): Promise<void> {
    return tracked.ended.promise;
  }

  async killAll(): Promise<void> {
    await Promise.allSettled([...this.#submissions]);
    const open = [...this.#jobs].filter(([, tracked]) => !ended(tracked)).map(([name]) => name);
    await Promise.all(open.map((name) => this.kill(name)));
  }

  /** Remove an ended job's record (so the name is free) and the outputs kept for it here. */
  forget(name: string): Promise<void> {
    // Which submission is forgotten is decided now: a job of the same name added right after is another one.
    const tracked = this.#jobs.get(name);
    if (tracked === undefined) return this.forgotten(name); // Never reached the cluster, or forgotten already.
    this.#jobs.delete(name);
    const forgetting = (async () => {
      const key = subjectToken(name);
      const entry = await this.#cluster.jobs.get(key);
      const record = entry === null || entry.operation !== "PUT" ? null : readJobRecord(entry.value);
      if (entry !== null && record !== null && !(record instanceof Unreadable) && record.id === tracked.id) {
        // Only this submission's record, only as it was read: another host may have replaced it since.
        await this.#cluster.jobs.delete(key, { previousSeq: entry.revision }).catch((error) => {
          if (!isWrongRevision(error)) throw error;
        });
      }
      await Deno.remove(this.#ownFolder(name, tracked), { recursive: true }).catch(() => {});
    })();
    this.#forgetting.set(name, forgetting);
    void forgetting.finally(() => {
      if (this.#forgetting.get(name) === forgetting) this.#forgetting.delete(name);
    }).catch(() => {});
    return forgetting;
  }

  /** Settles once the last `forget(name)` has (at once when there is none). */
  forgotten(name: string): Promise<void> {
    return this.#forgetting.get(name) ?? Promise.resolve();
  }

  /** Where this host keeps a submission's outputs when it gave no `outputDir` (or they clashed with it). */
  #ownFolder(name: string, tracked: Tracked): string {
    return join(this.#settings.workRoot, "outputs", subjectToken(name), tracked.id);
  }

  /** The job a message on a per-job subject (`bgproc.<ns>.job.<name token>.<kind>`) is about, if it has not ended. */
  #runningJob(subject: string): { name: string; tracked: Tracked } | undefined {
    const name = nameOfToken(subject.split(".")[3] ?? "");
    const tracked = name === undefined ? undefined : this.#jobs.get(name);
    if (name === undefined || tracked === undefined || ended(tracked)) return undefined;
    return { name, tracked };
  }

  /** Start receiving log lines (on the first reader, or a job with a `logFile`). */
  wantLogs(): void {
    if (this.#logSubscription !== undefined || this.#closing !== undefined) return;
    this.#logSubscription = this.#cluster.nc.subscribe(this.#cluster.names.allJobsSubject("log"), {
      callback: (error, msg) => {
        const about = error === null ? this.#runningJob(msg.subject) : undefined;
        const line = about === undefined ? null : readLogLine(msg.data);
        if (line instanceof Unreadable) return this.#unreadable.report(msg.subject, line, msg.data);
        if (about === undefined || line === null || !ofSubmission(line, about.tracked)) return;
        const { name } = about;
        this.#logFiles.write(name, line);
        this.#publish({ type: "output", name, attempt: line.attempt, stream: line.stream, line: line.line });
      },
    });
  }

  /**
   * Stop following the cluster, once every job submitted here has reached it (or failed to). Jobs go on in the
   * cluster; any host finds them later by name.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([...this.#submissions]);
      await Promise.allSettled([...this.#fetches]);
      await Promise.allSettled([...this.#removals]);
      for (const watch of this.#watches) watch.stop();
      for (const subscription of this.#subscriptions) subscription.unsubscribe();
      this.#logSubscription?.unsubscribe();
      this.#health.stop();
      await this.#abandoned.stop();
      await this.#overdue.close();
      for (const tracked of this.#jobs.values()) tracked.ended.resolve();
      await this.#logFiles.close();
      await this.#downloads.close();
      await this.#cluster.nc.drain().catch(() => {});
    })();
    return this.#closing;
  }
}

/** Whether a message is about `tracked`'s submission (an older worker's, without an id, is taken as it is). */
function ofSubmission(message: { readonly id?: string }, tracked: Tracked): boolean {
  return message.id === undefined || message.id === tracked.id;
}

/** How large a completed record's result is, as `resultLimit` counts it: the spilled file, or the python data's JSON. */
function resultSize(record: JobRecord): number {
  const result = record.result;
  if (result === null) return 0;
  if (result.overflow !== undefined) return result.overflow.size;
  return new TextEncoder().encode(JSON.stringify(result.pythonData)).length;
}
