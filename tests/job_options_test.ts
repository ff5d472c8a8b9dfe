/**
 * Job options that change how Blender starts, on a real Blender: `factoryStartup` (the user's scripts folder is on
 * `sys.path` only without it, in every mode, with jobs of both flavours on one manager), `addons` (enabled before
 * the script; a missing or broken one drops the job with an `AddonError` naming it; in pool mode the next job does
 * not inherit it), and job names from the add-on's UI (spaces, non-ASCII) from `addJob` to the job directory.
 */

import { deepStrictEqual, equal, match, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { JobDroppedError, JobManager, type JsonObject } from "../mod.ts";
import { fileURLToPath } from "node:url";
import { createService } from "../src/service/mod.ts";
import { fixture } from "./_helpers.ts";

const cli = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));

/** What `startup_probe.py` reports. */
interface Probe extends JsonObject {
  factory_startup: boolean;
  user_module: boolean;
  addons: string[];
  loaded: Record<string, boolean>;
  pid: number;
}

const USER_ADDON = `bl_info = {"name": "bgproc test add-on", "blender": (3, 4, 0), "category": "Development"}


def register():
    import bpy

    bpy.app.driver_namespace["bgproc_user_addon"] = True


def unregister():
    pass
`;

const BROKEN_ADDON = `bl_info = {"name": "bgproc broken add-on", "blender": (3, 4, 0), "category": "Development"}


def register():
    raise RuntimeError("the broken add-on refuses to register")


def unregister():
    pass
`;

/**
 * Run `body` with BLENDER_USER_SCRIPTS and BLENDER_USER_CONFIG set to fresh folders (the Blenders the managers in
 * `body` start inherit them): the scripts folder holds `modules/bgproc_user_probe.py` and two add-ons.
 */
async function withUserFolders(body: () => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "bgproc-user-" });
  const scripts = join(root, "scripts");
  await Deno.mkdir(join(scripts, "modules"), { recursive: true });
  await Deno.mkdir(join(scripts, "addons"), { recursive: true });
  await Deno.mkdir(join(root, "config"), { recursive: true });
  await Deno.writeTextFile(join(scripts, "modules", "bgproc_user_probe.py"), "VALUE = 1\n");
  await Deno.writeTextFile(join(scripts, "addons", "bgproc_user_addon.py"), USER_ADDON);
  await Deno.writeTextFile(join(scripts, "addons", "bgproc_broken_addon.py"), BROKEN_ADDON);
  const saved = ["BLENDER_USER_SCRIPTS", "BLENDER_USER_CONFIG"].map((key) => [key, Deno.env.get(key)] as const);
  Deno.env.set("BLENDER_USER_SCRIPTS", scripts);
  Deno.env.set("BLENDER_USER_CONFIG", join(root, "config"));
  try {
    await body();
  } finally {
    for (const [key, value] of saved) value === undefined ? Deno.env.delete(key) : Deno.env.set(key, value);
    await Deno.remove(root, { recursive: true });
  }
}

async function probe(manager: JobManager, options: { factoryStartup?: boolean; addons?: string[] } = {}) {
  const job = manager.addJob<Probe>({
    script: fixture("startup_probe.py"),
    passedData: { check: ["node_wrangler", "bgproc_user_addon"] },
    ...options,
  });
  return (await job.result()).pythonData;
}

for (const mode of ["process", "pool", "fork"] as const) {
  Deno.test(`${mode} mode: factoryStartup false sees the user's scripts, true does not, on one manager`, async () => {
    await withUserFolders(async () => {
      await using manager = new JobManager({ mode, maxWorkers: 1 });
      const user = await probe(manager, { factoryStartup: false });
      const factory = await probe(manager);
      const userAgain = await probe(manager, { factoryStartup: false });
      deepStrictEqual([user.factory_startup, user.user_module], [false, true]);
      deepStrictEqual([factory.factory_startup, factory.user_module], [true, false]);
      deepStrictEqual([userAgain.factory_startup, userAgain.user_module], [false, true]);
    });
  });
}

Deno.test("a manager's factoryStartup false is every job's default, and a job may still ask for factory settings", async () => {
  await withUserFolders(async () => {
    await using manager = new JobManager({ factoryStartup: false, mode: "pool", maxWorkers: 2 });
    const [user, factory] = await Promise.all([probe(manager), probe(manager, { factoryStartup: true })]);
    deepStrictEqual([user.factory_startup, user.user_module], [false, true]);
    deepStrictEqual([factory.factory_startup, factory.user_module], [true, false]);
  });
});

Deno.test("addons are enabled before the script: the manager's and the job's, and a user's add-on", async () => {
  await withUserFolders(async () => {
    await using manager = new JobManager({ addons: ["node_wrangler"] });
    const both = await probe(manager, { factoryStartup: false, addons: ["bgproc_user_addon", "node_wrangler"] });
    deepStrictEqual(both.loaded, { node_wrangler: true, bgproc_user_addon: true });
    ok(both.addons.includes("node_wrangler") && both.addons.includes("bgproc_user_addon"));
    const plain = await probe(manager);
    deepStrictEqual(plain.loaded, { node_wrangler: true, bgproc_user_addon: false });
  });
});

Deno.test("a missing or broken add-on drops the job with an AddonError naming it, before the script runs", async () => {
  await withUserFolders(async () => {
    await using manager = new JobManager({ maxWorkers: 2 });
    const dropped = async (addons: string[], factoryStartup = true) => {
      const job = manager.addJob({ script: fixture("startup_probe.py"), addons, factoryStartup });
      let caught: JobDroppedError | undefined;
      await rejects(job.result(), (error) => {
        caught = error as JobDroppedError;
        return error instanceof JobDroppedError && error.reason === "error";
      });
      equal(caught!.pythonError?.type, "AddonError");
      equal(caught!.pythonError?.origin, "addons");
      return caught!;
    };
    const [missing, extension, broken] = await Promise.all([
      dropped(["node_wrangler", "no_such_addon_xyz"]),
      dropped(["bl_ext.blender_org.no_such_extension"]),
      dropped(["bgproc_broken_addon"], false),
    ]);
    match(missing.summary, /an add-on could not be enabled: AddonError: add-on 'no_such_addon_xyz' is not installed/);
    match(missing.summary, /\(add-on folders: .*\)/);
    match(extension.summary, /add-on 'bl_ext\.blender_org\.no_such_extension' is not installed in Blender \d/);
    match(broken.summary, /add-on 'bgproc_broken_addon' could not be enabled: RuntimeError: the broken add-on refuses/);
    match(broken.report, /the broken add-on refuses to register/);
  });
});

Deno.test("io_import_images_as_planes: an add-on to enable on 3.4, a clear AddonError where 4.2+ built it in", async () => {
  await using manager = new JobManager();
  const [major, minor] = (await manager.blenderVersion()).split(".").map(Number);
  const job = manager.addJob<Probe>({
    script: fixture("startup_probe.py"),
    passedData: { check: ["io_import_images_as_planes"] },
    addons: ["io_import_images_as_planes"],
  });
  if (major! < 4 || (major === 4 && minor! < 2)) {
    deepStrictEqual((await job.result()).pythonData.loaded, { io_import_images_as_planes: true });
  } else {
    await rejects(
      job.result(),
      (error) =>
        error instanceof JobDroppedError && error.pythonError?.type === "AddonError" &&
        /'io_import_images_as_planes' is built into Blender .* Images as Planes/.test(error.summary),
    );
  }
});

Deno.test("pool mode: a job that enabled an add-on retires its worker, and the next job does not inherit it", async () => {
  await using manager = new JobManager({ mode: "pool", maxWorkers: 1 });
  const first = manager.addJob<Probe>({
    script: fixture("startup_probe.py"),
    passedData: { check: ["node_wrangler"] },
    addons: ["node_wrangler"],
  });
  const result = await first.result();
  deepStrictEqual(result.pythonData.loaded, { node_wrangler: true });
  match(result.stderr, /pool worker \d+ is retired after this job: .*add-ons were enabled or disabled/);
  const next = await probe(manager);
  equal(next.loaded.node_wrangler, false);
  ok(!next.addons.includes("node_wrangler"));
  ok(next.pid !== result.pythonData.pid, "the next job runs on a fresh worker");
});

Deno.test("pool mode: the manager's addons are enabled when a worker starts, so its jobs leave it clean", async () => {
  await using manager = new JobManager({ mode: "pool", maxWorkers: 1, addons: ["node_wrangler"] });
  const first = await manager.addJob<Probe>({
    script: fixture("startup_probe.py"),
    passedData: { check: ["node_wrangler"] },
  })
    .result();
  const second = await manager.addJob<Probe>({
    script: fixture("startup_probe.py"),
    passedData: { check: ["node_wrangler"] },
    addons: ["node_wrangler"],
  }).result();
  deepStrictEqual([first.pythonData.loaded, second.pythonData.loaded], [{ node_wrangler: true }, {
    node_wrangler: true,
  }]);
  equal(second.pythonData.pid, first.pythonData.pid, "both ran on the same worker");
  ok(!/retired/.test(first.stderr + second.stderr));
});

Deno.test("job names from the add-on's UI run, with ASCII job directories named apart", async () => {
  const names = ["test1.py_Square Object", "test1.py_Würfel", "レンダー 010", "test1.py_Wurfel", "a..b", "-dash"];
  const manager = new JobManager({ keepFiles: true, maxWorkers: 2 });
  try {
    const jobs = names.map((name) => manager.addJob({ name, script: fixture("echo.py"), passedData: { name } }));
    for (const [index, job] of jobs.entries()) {
      const result = await job.result();
      equal(result.name, names[index]);
      deepStrictEqual(result.pythonData.passed_data, { name: names[index] });
    }
    deepStrictEqual(manager.getJobNames(), names);
    const dirs = [...Deno.readDirSync(join(manager.workRoot, "jobs"))].map((entry) => entry.name);
    equal(new Set(dirs).size, names.length);
    for (const dir of dirs) match(dir, /^\d+-([A-Za-z0-9][A-Za-z0-9._-]*-)?[0-9a-f]{12}$/);
  } finally {
    await manager.close();
    await Deno.remove(manager.workRoot, { recursive: true });
  }
});

async function bgproc(cwd: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Deno.env.toObject();
  delete env.INIT_CWD;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-run", "--allow-env", "--allow-net", cli, ...args],
    stdin: "null",
    cwd,
    clearEnv: true,
    env: { ...env, NO_COLOR: "1" },
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

Deno.test("cli: run takes --no-factory-startup, --addon and a Unicode --name; batch entries take factoryStartup and addons", async () => {
  await withUserFolders(async () => {
    const dir = await Deno.makeTempDir({ prefix: "bgproc-cli-options-" });
    try {
      const check = JSON.stringify({ check: ["node_wrangler"] });
      const run = await bgproc(
        dir,
        "run",
        fixture("startup_probe.py"),
        "--no-factory-startup",
        "--addon",
        "node_wrangler",
        "--data-json",
        check,
        "--name",
        "test1.py_Würfel",
        "--json",
      );
      equal(run.code, 0, run.stderr);
      const printed = JSON.parse(run.stdout);
      equal(printed.name, "test1.py_Würfel");
      deepStrictEqual([printed.pythonData.factory_startup, printed.pythonData.user_module], [false, true]);
      deepStrictEqual(printed.pythonData.loaded, { node_wrangler: true });
      const jobs = [
        { name: "レンダー 010", script: fixture("startup_probe.py"), factoryStartup: false, addons: ["node_wrangler"] },
        { name: "test1.py_Square Object", script: fixture("startup_probe.py"), data: { check: ["node_wrangler"] } },
      ];
      await Deno.writeTextFile(join(dir, "jobs.jsonc"), JSON.stringify(jobs));
      const batch = await bgproc(dir, "batch", "jobs.jsonc", "--json", "--mode", "pool");
      equal(batch.code, 0, batch.stderr);
      const rows = JSON.parse(batch.stdout) as { name: string; pythonData: Probe }[];
      deepStrictEqual(rows.map((row) => row.name), ["レンダー 010", "test1.py_Square Object"]);
      deepStrictEqual([rows[0]!.pythonData.factory_startup, rows[0]!.pythonData.addons.includes("node_wrangler")], [
        false,
        true,
      ]);
      deepStrictEqual([rows[1]!.pythonData.factory_startup, rows[1]!.pythonData.loaded], [true, {
        node_wrangler: false,
      }]);
      const bad = await bgproc(dir, "run", fixture("startup_probe.py"), "--addon", "not a module");
      equal(bad.code, 2);
      match(bad.stderr, /--addon must hold add-on module names/);
      await Deno.writeTextFile(join(dir, "bad.jsonc"), JSON.stringify([{ script: "x.py", factoryStartup: "no" }]));
      const badBatch = await bgproc(dir, "batch", "bad.jsonc");
      equal(badBatch.code, 2);
      match(badBatch.stderr, /jobs\[0\]\.factoryStartup must be true or false/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("service: a job JSON with a Unicode name, factoryStartup and addons; its URL is percent-encoded", async () => {
  await withUserFolders(async () => {
    const scripts = await Deno.makeTempDir({ prefix: "bgproc-service-options-" });
    try {
      await Deno.copyFile(fixture("startup_probe.py"), join(scripts, "startup_probe.py"));
      await using manager = new JobManager();
      await using service = createService({ manager, scriptsDir: scripts });
      const post = (body: unknown) =>
        service.fetch(
          new Request("http://127.0.0.1:8000/jobs", {
            method: "POST",
            body: JSON.stringify(body),
            headers: { "content-type": "application/json" },
          }),
        );
      const name = "レンダー 010 ü#?%";
      const created = await post({
        script: "startup_probe.py",
        name,
        factoryStartup: false,
        addons: ["node_wrangler"],
        passedData: { check: ["node_wrangler"] },
      });
      equal(created.status, 201);
      const location = created.headers.get("location")!;
      equal(location, `jobs/${encodeURIComponent(name)}`);
      await created.body?.cancel();
      await manager.getJob(name)!.result();
      const detail = await (await service.fetch(new Request(`http://127.0.0.1:8000/${location}`))).json();
      equal(detail.name, name);
      equal(detail.state, "COMPLETED");
      equal(detail.factoryStartup, false);
      deepStrictEqual(detail.addons, ["node_wrangler"]);
      deepStrictEqual([detail.pythonData.factory_startup, detail.pythonData.loaded], [false, { node_wrangler: true }]);
      const bad = await post({ script: "startup_probe.py", addons: ["no spaces allowed"] });
      equal(bad.status, 400);
      match((await bad.json()).detail, /addons/);
    } finally {
      await Deno.remove(scripts, { recursive: true });
    }
  });
});
