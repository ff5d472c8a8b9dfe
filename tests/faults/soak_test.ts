/** A soak of 300 short jobs: afterwards no process, file descriptor, watcher or job file of the manager is left. */

import { deepStrictEqual, equal } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobManager } from "../../mod.ts";
import { fixture, inotifyWatches, processesMatching, waitFor } from "../_helpers.ts";

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

const SOAK_JOBS = Number(Deno.env.get("BGPROC_SOAK_JOBS") ?? 300);

Deno.test(`soak: ${SOAK_JOBS} short jobs leave no process, fd, watcher or file behind`, async () => {
  const manager = new JobManager({ maxWorkers: 2 });
  const { workRoot } = manager;
  // One job first: Deno opens its file-watching machinery (inotify, epoll, eventfd) once and keeps it.
  await manager.addJob({ script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } }).result();
  manager.removeJob("job-1");
  const fdsBefore = openFds();
  try {
    const jobs = Array.from(
      { length: SOAK_JOBS },
      (_, i) =>
        i % 10 === 9
          ? manager.addJob({ script: fixture("raise.py"), passedData: { value: i } })
          : manager.addJob({ script: fixture("progress.py"), passedData: { steps: 2, pause: 0 } }),
    );
    const settled = await Promise.allSettled(jobs.map((job) => job.result()));
    const failed = settled.filter((outcome) => outcome.status === "rejected").length;
    equal(failed, Math.floor(SOAK_JOBS / 10), "only the raising jobs may fail");
    deepStrictEqual(manager.counts, {
      queued: 0,
      active: 0,
      completed: SOAK_JOBS - failed,
      dropped: failed,
      availableWorkers: 2,
    });
    deepStrictEqual(processesMatching(workRoot), [], "a Blender of this manager is still running");
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
  // The manager's own lock on its work root is held until close(), by design.
  const expected = fdsBefore.filter((fd) => !fd.startsWith(workRoot));
  deepStrictEqual(openFds().sort(), expected.sort(), "file descriptors leaked");
});
