/**
 * Fork mode: each job runs in a fresh child of a warm zygote. What fork must
 * not break (threads, rendering), a zygote that dies, and the loud fallback.
 * What must not pass from one job to the next is in `isolation_test.ts`.
 */

import { deepStrictEqual, equal, match, notEqual, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobDroppedError, JobManager, type ManagerHealth } from "../mod.ts";
import { fixture, isAlive, processesMatching, waitFor } from "./_helpers.ts";

type Facts = { pid: number; ppid: number; pgid: number; random: number; threads: string[] };

Deno.test("fork: each job is a new child of one zygote, leads its own process group and gets its own random seed", async () => {
  await using manager = new JobManager({ mode: "fork", maxWorkers: 1 });
  const facts: Facts[] = [];
  for (let i = 0; i < 3; i++) {
    facts.push((await manager.addJob({ script: fixture("fork_probe.py") }).result()).pythonData as Facts);
  }
  equal(new Set(facts.map((f) => f.pid)).size, 3, "every job runs in a child of its own");
  equal(new Set(facts.map((f) => f.ppid)).size, 1, "all children come from one zygote");
  for (const f of facts) equal(f.pgid, f.pid, "the child leads its own process group");
  equal(new Set(facts.map((f) => f.random)).size, 3, "children share a random seed");
  for (const f of facts) equal(isAlive(f.pid), false);
});

Deno.test("fork: each child has temp folders of its own (bpy.app.tempdir, tempfile), gone with its job", async () => {
  await using manager = new JobManager({ mode: "fork", maxWorkers: 1 });
  type Temps = { blender: string; python: string; found: string[] };
  const run = async (tag: string) => {
    const job = manager.addJob({ script: fixture("temp_dirs.py"), passedData: { tag } });
    return { name: job.name, ...(await job.result()).pythonData as Temps };
  };
  const a = await run("a");
  const b = await run("b");
  equal(b.found.length, 0, `job B found what job A left: ${b.found}`);
  notEqual(a.blender, b.blender);
  notEqual(a.python, b.python);
  ok(a.python.startsWith(manager.workRoot), `${a.python} is not in the job's folder`);
  manager.removeJob(a.name);
  await waitFor(() => !existsSync(a.blender) && !existsSync(a.python), 5_000, "job A's temp folders to go with it");
});

Deno.test("fork: a child evaluates a subdivision modifier (TBB) and renders a Cycles frame", async () => {
  await using manager = new JobManager({ mode: "fork", maxWorkers: 1 });
  for (let i = 0; i < 2; i++) {
    const out = join(manager.workRoot, `frame-${i}.png`);
    const { pythonData } = await manager.addJob({ script: fixture("fork_render.py"), passedData: { out } }).result();
    equal(pythonData.vertices, 386);
    ok((await Deno.stat(out)).size > 0);
  }
});

Deno.test("fork: a zygote killed mid-job: its job runs again once, in a new zygote; killed again, it is dropped as crashed", async () => {
  await using manager = new JobManager({ mode: "fork", maxWorkers: 1, maxAttempts: 1 });
  const pidFile = join(manager.workRoot, "probe.json");
  const job = manager.addJob({ script: fixture("fork_probe.py"), passedData: { pid_file: pidFile, seconds: 600 } });
  await waitFor(() => job.progress >= 0.1, 20_000, "the job to start");
  const first = JSON.parse(await Deno.readTextFile(pidFile)) as Facts;
  Deno.kill(first.ppid, "SIGKILL");
  // Not the job's doing (as far as anyone can tell): it runs again without spending its one attempt.
  let second = first;
  await waitFor(
    () => {
      try {
        second = JSON.parse(Deno.readTextFileSync(pidFile)) as Facts;
      } catch {
        return false; // Being written.
      }
      return second.ppid !== first.ppid;
    },
    30_000,
    "the job to run again in a new zygote",
  );
  await waitFor(() => !isAlive(first.pid), 5_000, "the child to die with its zygote");
  Deno.kill(second.ppid, "SIGKILL");
  const error = await job.result().then(() => undefined, (e) => e);
  ok(error instanceof JobDroppedError);
  equal(error.reason, "crashed");
  equal(error.attempts, 2);
  ok(error.stderrTail.includes("fork-mode zygote"), error.stderrTail);
  const next = (await manager.addJob({ script: fixture("fork_probe.py") }).result()).pythonData as Facts;
  notEqual(next.ppid, second.ppid);
});

Deno.test("fork: where forking is unsafe, jobs run in process mode and each says so", async () => {
  Deno.env.set("BGPROC_FORK_UNSAFE", "a test says so");
  try {
    await using manager = new JobManager({ mode: "fork", maxWorkers: 1 });
    for (let i = 0; i < 2; i++) {
      const result = await manager.addJob({ script: fixture("fork_probe.py") }).result();
      ok(
        result.stderr.includes("fork mode is unsafe here (Blender ") && result.stderr.includes("a test says so"),
        result.stderr,
      );
      ok(result.commandLine.includes("--job-dir"), `not a Blender of its own: ${result.commandLine}`);
      ok(!result.commandLine.includes("zygote"), result.commandLine);
    }
  } finally {
    Deno.env.delete("BGPROC_FORK_UNSAFE");
  }
});

Deno.test("fork: a child that segfaults or exits 3 is crashed with its signal or code, and the zygote forks on", async () => {
  await using manager = new JobManager({ mode: "fork", maxWorkers: 1 });
  const before = (await manager.addJob({ script: fixture("fork_probe.py") }).result()).pythonData as Facts;
  for (const [how, check] of [["segfault", { signal: "SIGSEGV" }], ["exit", { exitCode: 3 }]] as const) {
    const error = await manager.addJob({ script: fixture("crash.py"), passedData: { how } }).result().then(
      () => undefined,
      (e) => e,
    );
    ok(error instanceof JobDroppedError);
    equal(error.reason, "crashed");
    if ("signal" in check) equal(error.signal, check.signal);
    else equal(error.exitCode, check.exitCode);
    // Whether "crashing now" shows depends on Python's buffering of stdout, which differs between Blender versions
    // (5.2 block-buffers it and loses the line in process mode too); the exit itself is what is checked here.
  }
  const after = (await manager.addJob({ script: fixture("fork_probe.py") }).result()).pythonData as Facts;
  equal(after.ppid, before.ppid, "the zygote was replaced after its child crashed");
});

Deno.test("fork: a job cannot reach its zygote's channel: /proc/<zygote>/fd is closed to it, it holds none of its fds", async () => {
  // As a user would run it: root with CAP_SYS_PTRACE may open any process's descriptors, so the host (and its jobs)
  // run without that capability here when the tests run as root.
  type Reach = { opened: string[]; stdin_is_null: boolean; other_pipes: number[] };
  const dir = await Deno.makeTempDir();
  try {
    const main = join(dir, "host.ts");
    await Deno.writeTextFile(
      main,
      `import { JobManager } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
const facts = {};
for (const mode of ["fork", "process"]) {
  await using manager = new JobManager({ mode, workDir: ${JSON.stringify(dir)} });
  facts[mode] = (await manager.addJob({ script: ${JSON.stringify(fixture("forge_zygote.py"))} }).result()).pythonData;
}
console.log(JSON.stringify(facts));
`,
    );
    const deno = [Deno.execPath(), "run", "--allow-read", "--allow-write", "--allow-run", "--allow-env", main];
    const [command, ...args] = Deno.uid() === 0
      ? ["setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace", "--", ...deno]
      : deno;
    const output = await new Deno.Command(command!, { args, stdin: "null", stderr: "inherit" }).output();
    ok(output.success, "the host failed");
    const facts = JSON.parse(new TextDecoder().decode(output.stdout)) as Record<"fork" | "process", Reach>;
    deepStrictEqual(facts.fork.opened, [], "a job opened its zygote's descriptors");
    ok(facts.fork.stdin_is_null, "a fork child's stdin is the zygote's channel");
    // What Blender itself holds open (5.2 keeps a pipe pair of its own) is the same in a process-mode job.
    equal(facts.fork.other_pipes.length, facts.process.other_pipes.length, "a fork child holds pipes of the zygote's");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fork: a zygote that dies while idle is restarted by the supervisor; past the restart intensity it is not, and health says why", async () => {
  await using manager = new JobManager({ mode: "fork", restartIntensity: { maxFailures: 1, periodMs: 60_000 } });
  // Every process of the zygote (a wrapped Blender is a few), and the zygote itself as its children see it.
  const processes = () => processesMatching(manager.workRoot);
  const zygote = async () =>
    ((await manager.addJob({ script: fixture("fork_probe.py") }).result()).pythonData as Facts).ppid;
  const first = await zygote(); // Up, and idle once the job is done.
  const before = processes();
  Deno.kill(first, "SIGKILL");
  await waitFor(() => processes().some((pid) => !before.includes(pid)), 30_000, "a new zygote, with no job asking");
  equal(manager.health.status, "ok");
  const second = await zygote();
  notEqual(second, first);
  const beforeSecond = processes();
  Deno.kill(second, "SIGKILL");
  await waitFor(() => manager.health.status === "failing", 30_000, "health to say failing");
  const health = ((): ManagerHealth => manager.health)(); // Read anew: the assertions above narrowed the type.
  ok(health.status === "failing" && /zygote \d+ exited on its own \(SIGKILL\)/.test(health.reason), health.status);
  deepStrictEqual(
    processes().filter((pid) => !beforeSecond.includes(pid)),
    [],
    "past the intensity nothing restarts it",
  );
});

Deno.test("fork: a job that kills its zygote costs the jobs beside it no attempt: they run again and complete", async () => {
  await using manager = new JobManager({ mode: "fork", maxWorkers: 2, maxAttempts: 1 });
  const marker = join(manager.workRoot, "killed-once");
  const pidFile = join(manager.workRoot, "sibling.pid");
  const sibling = manager.addJob({ script: fixture("sleep.py"), passedData: { seconds: 3, pid_file: pidFile } });
  await waitFor(() => sibling.progress >= 0.1, 20_000, "the sibling to run");
  const killer = manager.addJob({ script: fixture("kill_zygote.py"), passedData: { marker, delay: 0.2 } });
  const done = await sibling.result();
  equal(done.attempts, 2, "the sibling was not run again");
  // The killer gets the same one spared attempt (nobody can tell which child killed the zygote); it kills only once.
  equal((await killer.result()).attempts, 2);
});

Deno.test("fork: a job that always kills its zygote is dropped as crashed after its one spared attempt", async () => {
  await using manager = new JobManager({ mode: "fork", maxWorkers: 1, maxAttempts: 1 });
  const marker = join(manager.workRoot, "killed");
  const error = await manager.addJob({ script: fixture("kill_zygote.py"), passedData: { marker, always: true } })
    .result().then(() => undefined, (e) => e);
  ok(error instanceof JobDroppedError);
  equal(error.reason, "crashed");
  equal(error.attempts, 2);
  match(error.summary, /its fork-mode zygote died \(SIGKILL\)/);
  equal((await manager.addJob({ script: fixture("echo.py") }).result()).attempts, 1, "the next job did not run");
});

Deno.test("fork: a zygote that cannot end a killed child (stopped) is killed itself, and the kill still ends the job", async () => {
  await using manager = new JobManager({ mode: "fork", maxWorkers: 1 });
  const pidFile = join(manager.workRoot, "probe.json");
  const job = manager.addJob({ script: fixture("fork_probe.py"), passedData: { pid_file: pidFile, seconds: 600 } });
  await waitFor(() => job.progress >= 0.1, 20_000, "the job to start");
  const facts = JSON.parse(await Deno.readTextFile(pidFile)) as Facts;
  Deno.kill(facts.ppid, "SIGSTOP"); // A job (same user) can stop its zygote; the zygote then reads no kill request.
  try {
    await job.kill(); // Settles once the job has ended: 5 s later, when the host has killed the zygote itself.
    equal(job.state, "DROPPED");
    await waitFor(() => !isAlive(facts.ppid) && !isAlive(facts.pid), 5_000, "the zygote and its child to be gone");
  } finally {
    if (isAlive(facts.ppid)) Deno.kill(facts.ppid, "SIGKILL");
  }
  const next = (await manager.addJob({ script: fixture("fork_probe.py") }).result()).pythonData as Facts;
  notEqual(next.ppid, facts.ppid, "the next job ran on a new zygote");
});
