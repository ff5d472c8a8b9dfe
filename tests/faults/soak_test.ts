/** A soak of short jobs in every mode: afterwards no process, file descriptor, watcher or job file of the manager is left. */

import { deepStrictEqual, equal } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobManager } from "../../mod.ts";
import { fixture, forkChildren, inotifyWatches, processesMatching, waitFor } from "../_helpers.ts";

/** Open file descriptors, less inotify instances (Deno keeps one open once it has watched; `inotifyWatches` counts). */
function openFds(): string[] {
  const fds: string[] = [];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      const target = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
      if (target !== "anon_inode:inotify") fds.push(target);
    } catch {
      // The directory listing's own fd, closed by now.
    }
  }
  return fds;
}

/**
 * Jobs per mode: 300 where a job is a fork or a warm worker's turn, 100 in process mode, where each job is a whole
 * Blender start-up (about 1.5 CPU seconds: 300 of them were a quarter of CI's CPU on 2 cores). A leak per job shows
 * within a few jobs; the hundreds are for rarer ones. `BGPROC_SOAK_JOBS` sets one count for every mode.
 */
const SOAK_JOBS = { process: 100, fork: 300, pool: 300 } as const;

for (const mode of ["process", "fork", "pool"] as const) {
  const count = Number(Deno.env.get("BGPROC_SOAK_JOBS") ?? SOAK_JOBS[mode]);
  Deno.test(`soak, ${mode} mode: ${count} short jobs leave no process, fd, watcher or file behind`, async () => {
    const manager = new JobManager({ mode, maxWorkers: 2 });
    const { workRoot } = manager;
    // One job first: Deno opens its file-watching machinery (inotify, epoll, eventfd) once and keeps it, and a warm
    // mode starts its Blenders.
    await manager.addJob({ script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } }).result();
    manager.removeJob("job-1");
    const fdsBefore = openFds();
    try {
      const jobs = Array.from(
        { length: count },
        (_, i) =>
          i % 10 === 9
            ? manager.addJob({ script: fixture("raise.py"), passedData: { value: i } })
            : manager.addJob({ script: fixture("progress.py"), passedData: { steps: 2, pause: 0 } }),
      );
      const settled = await Promise.allSettled(jobs.map((job) => job.result()));
      const failed = settled.filter((outcome) => outcome.status === "rejected").length;
      equal(failed, Math.floor(count / 10), "only the raising jobs may fail");
      deepStrictEqual(manager.counts, {
        queued: 0,
        active: 0,
        completed: count - failed,
        dropped: failed,
        availableWorkers: 2,
      });
      // Process mode: no Blender of this manager runs between jobs. Fork mode: no job child (the zygote stays).
      if (mode === "process") deepStrictEqual(processesMatching(workRoot), [], "a Blender of this manager still runs");
      if (mode === "fork") deepStrictEqual(forkChildren(workRoot), [], "a job's child of the zygote still runs");
      const jobsDir = join(workRoot, "jobs");
      const left = () => existsSync(jobsDir) ? [...Deno.readDirSync(jobsDir)].map((e) => e.name) : [];
      // A job directory is removed just after its job ends (close() waits for removals): allow the last one a moment.
      await waitFor(() => left().length === 0, 10_000, "the job directories to be removed").catch(() => {});
      deepStrictEqual(left(), []);
      equal(inotifyWatches(), 0, "a progress watcher is still open");
    } finally {
      await manager.close();
    }
    equal(existsSync(workRoot), false, "the work root outlived close()");
    deepStrictEqual(processesMatching(workRoot), [], "a Blender of this manager outlived close()");
    // The manager's own lock on its work root is held until close(), by design; a warm mode's channels to its
    // Blenders (their pipes) were opened before `fdsBefore` and are closed by close().
    const open = openFds().sort();
    const expected = fdsBefore.filter((fd) => !fd.startsWith(workRoot) && open.includes(fd)).sort();
    deepStrictEqual(open, expected, "file descriptors leaked");
  });
}
