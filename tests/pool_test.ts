/** Pool mode: warm workers run many jobs, reset between them, recycle, survive crashes, and stop on close. */

import { deepStrictEqual, equal, match, notEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { JobDroppedError, JobManager } from "../mod.ts";
import { fixture, processesMatching, waitFor } from "./_helpers.ts";

type Probe = {
  pid: number;
  objects: number;
  cwd: string;
  argv_after_dashes: string[];
  leftover_global: boolean;
  sys_path_has_mess: boolean;
};

async function probe(manager: JobManager, passedData = {}, args: string[] = []): Promise<Probe> {
  const result = await manager.addJob({ script: fixture("pool_probe.py"), passedData, args }).result();
  return result.pythonData as Probe;
}

Deno.test("a worker runs job after job, each in a fresh scene, fresh globals, its own argv, cwd and sys.path", async () => {
  await using manager = new JobManager({ mode: "pool", maxWorkers: 1 });
  const first = await probe(manager, { mess: true }, ["--first"]);
  const second = await probe(manager, {}, ["--second"]);
  equal(second.pid, first.pid, "the second job did not run in the warm worker");
  deepStrictEqual(first.argv_after_dashes, ["--first"]);
  deepStrictEqual(second.argv_after_dashes, ["--second"]);
  equal(second.objects, 0, "the first job's monkey leaked into the second job");
  equal(second.cwd, first.cwd, "the first job's chdir leaked");
  equal(second.leftover_global, false);
  equal(second.sys_path_has_mess, false);
});

Deno.test("a job's output cannot fake the control channel or its end marker", async () => {
  await using manager = new JobManager({ mode: "pool", maxWorkers: 1 });
  const result = await manager.addJob({ script: fixture("pool_probe.py"), passedData: { fake: true } }).result();
  match(result.stdout, /"type": "done"/);
  ok(result.stdout.includes("\x1ebgproc-end guess"), "the fake end marker is part of the output");
  ok(result.stdout.includes('\x1ebgproc-done guess {"exitCode": 0}'), "the fake done marker is part of the output");
  match(result.stderr, /after the fake marker/);
  equal((await probe(manager)).objects, 0);
});

Deno.test("workers are retired after maxJobsPerWorker jobs and above maxWorkerMemoryMiB", async () => {
  {
    await using manager = new JobManager({ mode: "pool", maxWorkers: 1, maxJobsPerWorker: 2 });
    const pids = [];
    for (let i = 0; i < 5; i++) pids.push((await probe(manager)).pid);
    equal(pids[0], pids[1]);
    notEqual(pids[1], pids[2]);
    equal(pids[2], pids[3]);
    notEqual(pids[3], pids[4]);
  }
  {
    await using manager = new JobManager({ mode: "pool", maxWorkers: 1, maxWorkerMemoryMiB: 1 });
    const pids = [(await probe(manager)).pid, (await probe(manager)).pid];
    notEqual(pids[0], pids[1], "a worker above the memory ceiling was not retired");
  }
});

Deno.test("a worker that crashes takes only its job; the next job gets a new worker", async () => {
  await using manager = new JobManager({ mode: "pool", maxWorkers: 1 });
  const before = await probe(manager);
  const error = await manager.addJob({ script: fixture("crash.py"), passedData: { how: "segfault" } }).result().then(
    () => undefined,
    (e) => e,
  );
  ok(error instanceof JobDroppedError);
  equal(error.reason, "crashed");
  equal(error.signal, "SIGSEGV");
  const after = await probe(manager);
  notEqual(after.pid, before.pid);
  equal(after.objects, 0);
});

Deno.test("prewarm starts the workers at once, and close() stops every one", async () => {
  const manager = new JobManager({ mode: "pool", maxWorkers: 2, prewarm: true });
  const root = manager.workRoot;
  try {
    await waitFor(() => processesMatching(root, Deno.pid).length === 2, 20_000, "two warm workers");
  } finally {
    await manager.close();
  }
  deepStrictEqual(processesMatching(root), []);
});

Deno.test("prewarm keeps the workers warm: one killed with its job is replaced at once, not by the next job", async () => {
  await using manager = new JobManager({ mode: "pool", maxWorkers: 1, prewarm: true });
  const root = manager.workRoot;
  await waitFor(() => processesMatching(root, Deno.pid).length === 1, 20_000, "a warm worker");
  const [first] = processesMatching(root, Deno.pid);
  const job = manager.addJob({ script: fixture("sleep.py"), passedData: { seconds: 60 } });
  for await (const progress of job.progressUpdates()) if (progress > 0) break; // Running.
  await job.kill();
  await waitFor(
    () => {
      const workers = processesMatching(root, Deno.pid);
      return workers.length === 1 && workers[0] !== first;
    },
    20_000,
    "a new warm worker with no job asking",
  );
});

Deno.test("a pool job's report names what really ran: the worker's command line and the job on it", async () => {
  await using manager = new JobManager({ mode: "pool", maxWorkers: 1 });
  const error = await manager.addJob({ script: fixture("raise.py") }).result().then(() => undefined, (e) => e);
  ok(error instanceof JobDroppedError);
  match(error.commandLine, /--pool --worker-id .*# pool worker \d+ \(pid \d+\), job \S+$/);
  ok(!error.commandLine.includes("--job-dir"), "the report shows a process-mode command that never ran");
  match(error.report, /--- command ---\n.*--pool /);
});

Deno.test("a pool worker that dies while idle is restarted by the supervisor, with no job asking", async () => {
  await using manager = new JobManager({ mode: "pool", maxWorkers: 1 });
  // Every process of the workers (a wrapped Blender is a few), and the worker itself as its jobs see it.
  const processes = () => processesMatching(join(manager.workRoot, "pool"));
  const worker = async () =>
    ((await manager.addJob({ script: fixture("fork_probe.py") }).result()).pythonData as { pid: number }).pid;
  const first = await worker(); // Up, and idle once the job is done.
  const before = processes();
  Deno.kill(first, "SIGKILL");
  await waitFor(() => processes().some((pid) => !before.includes(pid)), 30_000, "a new worker");
  equal(manager.health.status, "ok");
  notEqual(await worker(), first);
});
