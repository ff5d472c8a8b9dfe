/**
 * Unreadable messages: a message or KV record that is not bgproc's (it does not parse, or does not have the
 * protocol's shape, `_wire.ts`) is skipped where it arrived, told once per kind of subject and problem (a manager
 * event, a worker event), and dead-lettered with its reason on the namespace's dead-letter stream, where
 * `NatsJobManager.unreadableMessages()` lists it. A flood is bounded: at most {@linkcode UNREADABLE_PER_MINUTE} dead
 * letters a minute from one host or worker; the rest are counted only.
 */

import type { Cluster } from "./_connection.ts";
import { encode } from "./_protocol.ts";
import type { Unreadable } from "./_wire.ts";

/** Dead letters one desk writes a minute, at most. */
export const UNREADABLE_PER_MINUTE = 60;
/** The characters of an unreadable message kept in its dead letter. */
const EXCERPT = 200;

/** A message or record no host or worker could read, as its dead letter holds it. */
export interface UnreadableMessage {
  /** Where it came from: a subject, or `kv:<bucket>/<key>`. */
  readonly subject: string;
  /** Why it could not be read. */
  readonly problem: string;
  /** Its first characters (bytes that are not UTF-8 as U+FFFD). */
  readonly excerpt: string;
  /** Its size in bytes. */
  readonly bytes: number;
  /** Which host or worker could not read it. */
  readonly seenBy: string;
  /** When. */
  readonly at: Date;
}

/** What an `UnreadableDesk` tells its owner, once per kind of subject and problem. */
export type OnUnreadable = (unreadable: { readonly subject: string; readonly problem: string }) => void;

/** One host's or worker's handling of what it cannot read. */
export class UnreadableDesk {
  readonly #cluster: Cluster;
  readonly #observer: string;
  readonly #onFirst: OnUnreadable;
  readonly #told = new Set<string>();
  #windowStart = 0;
  #inWindow = 0;
  /** Unreadable messages not dead-lettered because of the rate bound. */
  uncounted = 0;

  constructor(cluster: Cluster, observer: string, onFirst: OnUnreadable) {
    this.#cluster = cluster;
    this.#observer = observer;
    this.#onFirst = onFirst;
  }

  /** Report `bytes`, which arrived on `subject` and could not be read. Never throws. */
  report(subject: string, unreadable: Unreadable, bytes: Uint8Array): void {
    const kind = `${subject.replace(/\.job\.[^.]+\./, ".job.*.").replace(/\/.*$/, "/*")}: ${unreadable.problem}`;
    if (!this.#told.has(kind)) {
      this.#told.add(kind);
      try {
        this.#onFirst({ subject, problem: unreadable.problem });
      } catch {
        // The owner's listener failing is no reason to stop reading.
      }
    }
    const now = Date.now();
    if (now - this.#windowStart > 60_000) [this.#windowStart, this.#inWindow] = [now, 0];
    if (++this.#inWindow > UNREADABLE_PER_MINUTE) {
      this.uncounted++;
      return;
    }
    const letter = {
      kind: "unreadable",
      subject,
      problem: unreadable.problem,
      excerpt: new TextDecoder().decode(bytes.subarray(0, EXCERPT * 4)).slice(0, EXCERPT),
      bytes: bytes.length,
      seenBy: this.#observer,
      at: new Date(now).toISOString(),
    };
    void this.#cluster.js.publish(this.#cluster.names.unreadableSubject, encode(letter)).catch(() => {});
  }
}
