/**
 * Jobs on the local backend without the facade: what a NATS worker drives. Each job is the one `Job`
 * (`JobHandle`), fed by the backend's events; the options were checked once, by `checkJob`, where they arrived.
 */

import type { CheckedJob } from "../api/checked_job.ts";
import { JobHandle } from "../api/job.ts";
import type { ResolvedOptions } from "../api/options.ts";
import { LocalBackend } from "./backend.ts";

/** A local backend and the jobs it runs. */
export class LocalJobs {
  readonly backend: LocalBackend;
  readonly #jobs = new Map<string, JobHandle>();

  constructor(options: ResolvedOptions, blender: string) {
    this.backend = new LocalBackend(options, blender, (event) => {
      if (event.type === "health" || event.type === "unreadable" || event.type === "known") return;
      if (event.type === "forgotten") return; // The worker's own jobs: nothing to tell about these.
      this.#jobs.get(event.name)?.apply(event);
    });
  }

  /** Run `job` (its name must be new); returns its handle. */
  run(job: CheckedJob): JobHandle {
    const handle = new JobHandle(job.name, () => this.backend.kill(job.name));
    this.#jobs.set(job.name, handle);
    this.backend.submit(job);
    return handle;
  }

  /** Forget an ended job and what it left. */
  async remove(name: string): Promise<void> {
    this.#jobs.delete(name);
    await this.backend.forget(name);
  }

  /** Kill every job and stop. */
  close(): Promise<void> {
    return this.backend.close();
  }
}
