/**
 * Files through the object store, addressed by SHA-256: a file is uploaded
 * only when the store lacks its hash, and downloaded once per cache folder.
 */

import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import type { ObjectStore } from "@nats-io/obj";
import type { FileRef, JobRecord } from "./_protocol.ts";

/** How many uploads a host made, and how many it skipped because the store had the file. */
export interface FileStats {
  /** Files uploaded. */
  readonly uploaded: number;
  /** Files the store already had (by hash). */
  readonly reused: number;
  /** Bytes uploaded. */
  readonly uploadedBytes: number;
}

/** The SHA-256 of a file, hex. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** Uploads files by hash, once. */
export class Uploader {
  readonly #store: ObjectStore;
  readonly #pending = new Map<string, Promise<boolean>>();
  #uploaded = 0;
  #reused = 0;
  #uploadedBytes = 0;
  /** Each file's hash while its size, time and inode are unchanged: a file is hashed once, not at every job. */
  readonly #hashes = new Map<string, { stamp: string; sha256: Promise<string> }>();
  /** Hashings under way, by path and stamp: jobs submitted at once share them. */
  readonly #hashing = new Map<string, Promise<string>>();
  /** Hashes this uploader saw in the store (it asked, or uploaded them), the oldest first. */
  readonly #seen = new Set<string>();

  constructor(store: ObjectStore) {
    this.#store = store;
  }

  get stats(): FileStats {
    return { uploaded: this.#uploaded, reused: this.#reused, uploadedBytes: this.#uploadedBytes };
  }

  /** `path`'s SHA-256: kept while its size, time and inode are unchanged; one hashing at a time per file. */
  #hashOf(path: string, stamp: string): Promise<string> {
    const kept = this.#hashes.get(path);
    if (kept?.stamp === stamp) return kept.sha256;
    const key = `${path}\0${stamp}`;
    const running = this.#hashing.get(key);
    if (running !== undefined) return running;
    const hashing = sha256File(path).then((sha256) => {
      this.#hashes.delete(path);
      this.#hashes.set(path, { stamp, sha256: Promise.resolve(sha256) });
      if (this.#hashes.size > 10_000) this.#hashes.delete(this.#hashes.keys().next().value!);
      return sha256;
    }).finally(() => this.#hashing.delete(key));
    this.#hashing.set(key, hashing);
    return hashing;
  }

  /** Upload `path` unless the store has its content (or an upload of it is under way); returns its reference. */
  async put(path: string, name: string = basename(path)): Promise<FileRef> {
    const { ref, stored } = await this.reference(path, name);
    await stored;
    return ref;
  }

  /**
   * {@linkcode put} in two steps: `path`'s reference once it is hashed, and `stored`, which settles once the store
   * has its content (asked, or uploaded; rejects as `put` does); `known` says whether this uploader saw that content
   * in the store before (it is asked again all the same: files may have been collected).
   */
  async reference(
    path: string,
    name: string = basename(path),
  ): Promise<{ ref: FileRef; stored: Promise<void>; known: boolean }> {
    // Synchronous, as the job's checks (`_validate.ts`) stat the same path just before: an async stat cost ~0.5 ms on an
    // idle host. On a slow network share both block the host's loop as long as the share takes to answer.
    const info = Deno.statSync(path);
    const { size } = info;
    const stamp = `${size} ${info.mtime?.getTime()} ${info.ino} ${info.dev}`;
    const sha256 = await this.#hashOf(path, stamp);
    const ref = { sha256, name, size };
    const known = this.#seen.has(sha256);
    const pending = this.#pending.get(sha256);
    if (pending !== undefined) {
      return { ref, stored: pending.then(() => void this.#reused++), known };
    }
    const upload = this.#upload(path, ref);
    this.#pending.set(sha256, upload);
    // Only uploads in flight are shared: a later put asks the store again (files may have been collected).
    const stored = upload.finally(() => this.#pending.delete(sha256)).then((uploaded) => {
      this.#seen.delete(sha256);
      this.#seen.add(sha256);
      if (this.#seen.size > 10_000) this.#seen.delete(this.#seen.values().next().value!);
      if (!uploaded) return void this.#reused++;
      this.#uploaded++;
      this.#uploadedBytes += size;
    });
    return { ref, stored, known };
  }

  /** Upload `path` as `ref` unless the store has its hash; returns whether it uploaded. */
  async #upload(path: string, ref: FileRef): Promise<boolean> {
    const { sha256: hash, name, size } = ref;
    if ((await this.#store.info(hash).catch(() => null))?.deleted === false) return false;
    const file = await Deno.open(path);
    // What is stored is hashed on its way: a file changed since it was hashed is not kept under the old hash.
    const hasher = createHash("sha256");
    let bytes = 0;
    const hashed = file.readable.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          hasher.update(chunk);
          bytes += chunk.byteLength;
          controller.enqueue(chunk);
        },
      }),
    );
    // put() reads the stream to its end, which closes the file.
    await this.#store.put({ name: hash, description: name }, hashed);
    if (hasher.digest("hex") !== hash || bytes !== size) {
      await this.#store.delete(hash).catch(() => {});
      this.#hashes.delete(path);
      throw new Error(`${path} changed while it was uploaded: nothing of it was kept; add the job again`);
    }
    return true;
  }
}

/**
 * Remove objects that no job record references and that were stored more
 * than `olderThanMs` ago.
 *
 * @returns The hashes removed.
 */
export async function collectFiles(
  store: ObjectStore,
  referenced: ReadonlySet<string>,
  olderThanMs: number,
): Promise<string[]> {
  const removed: string[] = [];
  const cutoff = Date.now() - olderThanMs;
  for (const info of await store.list()) {
    if (info.deleted || referenced.has(info.name) || Date.parse(info.mtime) > cutoff) continue;
    await store.delete(info.name);
    removed.push(info.name);
  }
  return removed;
}

/** Every file a job record refers to. */
export function referencedFiles(record: JobRecord): FileRef[] {
  const refs: (FileRef | null | undefined)[] = [
    record.spec.script,
    record.spec.blendFile,
    record.spec.passedDataFile,
    record.spec.passedDataBlocks?.file,
    ...(record.spec.inputs ?? []),
    record.spec.layoutFile,
    ...(Array.isArray(record.spec.layout?.files) ? record.spec.layout.files.map((entry) => entry?.file) : []),
    record.result?.dataBlocks?.file,
    record.result?.overflow,
    record.result?.outputsFile,
    ...(record.result?.outputs ?? []).map((output) => output.file),
  ];
  return refs.filter((ref): ref is FileRef => ref !== null && ref !== undefined);
}

/** Downloads files by hash into a cache folder, once each; `close()` ends the downloads still running. */
export class FileCache {
  readonly #store: ObjectStore;
  readonly #dir: string;
  readonly #pending = new Map<string, Promise<string>>();
  /**
   * Aborts running downloads on close. nats.js reads an object through a push consumer with an idle-heartbeat
   * interval that only stopping the read ends: a download that stalls (the server restarted mid-read) would otherwise
   * keep waiting, and keep its timer running, after the connection has closed. A read that starts while the
   * connection drains is worse: nats.js starts the timer, then fails to subscribe and never stops it, so no download
   * starts after close.
   */
  readonly #closing = new AbortController();

  constructor(store: ObjectStore, dir: string) {
    this.#store = store;
    this.#dir = dir;
  }

  /** The local path of the file, downloaded when not cached yet (`<dir>/<sha256>/<name>`). */
  get(ref: FileRef): Promise<string> {
    const key = `${ref.sha256}/${ref.name}/${ref.size}`;
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      pending = this.#download(ref);
      this.#pending.set(key, pending);
      pending.catch(() => this.#pending.delete(key));
    }
    return pending;
  }

  #checkOpen(ref: FileRef): void {
    if (this.#closing.signal.aborted) {
      throw new Error(`Cannot fetch file '${ref.name}' (${ref.sha256}): the NATS connection is closing`);
    }
  }

  async #download(ref: FileRef): Promise<string> {
    if (!/^[0-9a-f]{64}$/.test(ref.sha256) || ref.name.includes("/") || ref.name === "." || ref.name === "..") {
      throw new Error(`Cannot fetch file ${JSON.stringify(ref)}: bad reference`);
    }
    const folder = join(this.#dir, ref.sha256);
    const path = join(folder, ref.name);
    try {
      if ((await Deno.stat(path)).size === ref.size) return path;
    } catch {
      // Not cached yet.
    }
    this.#checkOpen(ref);
    const result = await this.#store.get(ref.sha256);
    if (result === null) throw new Error(`Cannot fetch file '${ref.name}' (${ref.sha256}): not in the object store`);
    if (result.info.size !== ref.size) {
      // Not the file the record means (its size is part of the reference): not read at all.
      await result.data.cancel().catch(() => {});
      Promise.resolve(result.error).catch(() => {});
      throw new Error(
        `Cannot fetch file '${ref.name}' (${ref.sha256}): it is ${result.info.size} bytes, not the ${ref.size} recorded`,
      );
    }
    const temp = `${path}.part-${crypto.randomUUID()}`;
    let file: Deno.FsFile;
    try {
      this.#checkOpen(ref);
      await Deno.mkdir(folder, { recursive: true });
      file = await Deno.open(temp, { write: true, create: true, truncate: true });
    } catch (error) {
      // The read has begun (a consumer with a heartbeat timer): only cancelling its stream ends it.
      await result.data.cancel().catch(() => {});
      Promise.resolve(result.error).catch(() => {});
      throw error;
    }
    try {
      // At most the recorded size is written, whatever the store's chunks hold.
      await result.data.pipeThrough(atMost(ref.size)).pipeTo(file.writable, { signal: this.#closing.signal });
    } catch (error) {
      Promise.resolve(result.error).catch(() => {}); // Rejects too when the read failed: said below.
      await Deno.remove(temp).catch(() => {});
      throw new Error(`Cannot fetch file '${ref.name}' (${ref.sha256}): ${errorText(error)}`, { cause: error });
    }
    const error = await result.error;
    const hash = error ? "" : await sha256File(temp);
    if (hash !== ref.sha256) {
      await Deno.remove(temp).catch(() => {});
      throw new Error(
        `Cannot fetch file '${ref.name}' (${ref.sha256}): ${error ? error.message : `it hashes to ${hash}`}`,
        {
          cause: error,
        },
      );
    }
    await Deno.rename(temp, path);
    return path;
  }

  /**
   * End the downloads still running (each rejects) and refuse new ones; settles once every download has, so that no
   * read is still starting when the connection closes. Idempotent.
   */
  async close(): Promise<void> {
    this.#closing.abort(new Error("the NATS connection is closing"));
    await Promise.allSettled([...this.#pending.values()]);
  }
}

/** A stream that errors once more than `limit` bytes went through it. */
function atMost(limit: number): TransformStream<Uint8Array, Uint8Array> {
  let seen = 0;
  return new TransformStream({
    transform(chunk, controller) {
      seen += chunk.byteLength;
      if (seen > limit) throw new Error(`it holds more than the ${limit} bytes recorded`);
      controller.enqueue(chunk);
    },
  });
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
