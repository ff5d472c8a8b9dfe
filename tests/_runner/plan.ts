/**
 * Which test file runs where. Every `*_test.ts` under tests/ is listed here once (a test checks it):
 *
 * - `"every"`: on every Blender we test (3.4, 4.3 and 5.2 LTS), because a Blender version can change its answer: it
 *   starts Blender and what it checks depends on Blender's own behaviour (jobs, data blocks, files each Blender writes,
 *   renders, add-on scripts, fork and pool, faults).
 * - `"default"`: once, on the default Blender (3.4), because it starts Blender but checks the host's side only (the
 *   CLI's screen, the service's HTTP, the dashboard in Chromium, NATS plumbing, the host's own leaks): every other
 *   Blender would run the same host code to the same answer.
 * - `"none"`: once, and it starts no Blender at all (the .blend reader's fuzzing, the supervisor on a fake clock,
 *   validation, the protocol).
 *
 * `seconds` is the file's wall time on 3.4 in a run of three files at once on our 2-core machine (a busy one): the
 * runner starts the longest first.
 */

/** Where a test file runs: see the module doc. */
export type Where = "every" | "default" | "none";

/** One test file's entry in the plan. */
export interface PlanEntry {
  /** Where it runs. */
  readonly where: Where;
  /** Its wall time on Blender 3.4 in a parallel run (see the module doc), for scheduling. */
  readonly seconds: number;
  /** The tests of this file that `deno task test:quick` runs (a `--filter`), when not the whole file. */
  readonly quick?: string;
}

/** The plan: file (relative to the repository) -> where and how long. */
export const PLAN: Readonly<Record<string, PlanEntry>> = {
  // Jobs on Blender: every Blender.
  "tests/addon_scripts_test.ts": { where: "every", seconds: 171 },
  "tests/blend_file_test.ts": { where: "every", seconds: 9 },
  "tests/data_blocks_test.ts": { where: "every", seconds: 291 },
  "tests/deps_test.ts": { where: "every", seconds: 15 },
  "tests/gpu_test.ts": { where: "every", seconds: 20 },
  "tests/events_test.ts": { where: "every", seconds: 31 },
  "tests/failure_report_test.ts": { where: "every", seconds: 40 },
  "tests/fork_test.ts": { where: "every", seconds: 57 },
  "tests/isolation_test.ts": { where: "every", seconds: 296 },
  "tests/job_files_test.ts": { where: "every", seconds: 57 },
  "tests/job_manager_test.ts": {
    where: "every",
    seconds: 405,
    quick: "passed data with quotes, newlines, unicode, nesting and 10 MB arrives intact",
  },
  "tests/job_options_test.ts": { where: "every", seconds: 210 },
  "tests/lifecycle_test.ts": { where: "every", seconds: 46 },
  "tests/outputs_test.ts": { where: "every", seconds: 100 },
  "tests/pool_test.ts": { where: "every", seconds: 73 },
  "tests/reaper_test.ts": { where: "every", seconds: 59 },
  "tests/render_progress_test.ts": { where: "every", seconds: 61 },
  "tests/render_test.ts": { where: "every", seconds: 108 },
  "tests/validation_test.ts": { where: "every", seconds: 19 },
  "tests/work_root_test.ts": { where: "every", seconds: 10 },
  "tests/telemetry_test.ts": { where: "every", seconds: 12 },
  "tests/faults/crash_test.ts": { where: "every", seconds: 26 },
  "tests/faults/daemon_test.ts": { where: "every", seconds: 40 },
  "tests/faults/exit_and_kill_test.ts": { where: "every", seconds: 84 },
  "tests/faults/host_death_test.ts": { where: "every", seconds: 38 },
  "tests/faults/output_test.ts": { where: "every", seconds: 31 },
  "tests/faults/start_failure_test.ts": { where: "every", seconds: 24 },
  "tests/nats/cluster_test.ts": { where: "every", seconds: 62 },
  "tests/nats/job_manager_test.ts": { where: "every", seconds: 44 },
  "tests/nats/lifecycle_test.ts": { where: "every", seconds: 80 },
  "tests/nats/render_test.ts": { where: "every", seconds: 60 },
  "tests/nats/deps_test.ts": { where: "every", seconds: 25 },
  "tests/remote_import_test.ts": { where: "every", seconds: 11 },
  // The host's side, on the default Blender.
  "tests/cli_blocks_test.ts": { where: "default", seconds: 30 },
  "tests/cli_terminal_test.ts": { where: "default", seconds: 120 },
  "tests/cli_test.ts": { where: "default", seconds: 158 },
  "tests/dashboard_farm_test.ts": { where: "default", seconds: 40 },
  "tests/dashboard_list_test.ts": { where: "default", seconds: 60 },
  "tests/dashboard_priority_test.ts": { where: "default", seconds: 30 },
  "tests/dashboard_test.ts": { where: "default", seconds: 38 },
  "tests/dashboard_timeline_test.ts": { where: "default", seconds: 15 },
  "tests/lazy_nats_test.ts": { where: "default", seconds: 30 },
  "tests/priority_test.ts": { where: "default", seconds: 10 },
  "tests/service_names_test.ts": { where: "default", seconds: 30 },
  "tests/service_render_test.ts": { where: "default", seconds: 60 },
  "tests/service_test.ts": { where: "default", seconds: 27 },
  "tests/permissions_test.ts": { where: "default", seconds: 240 },
  "tests/faults/soak_test.ts": { where: "default", seconds: 420 },
  "tests/nats/cli_test.ts": { where: "default", seconds: 39 },
  "tests/nats/done_when_test.ts": { where: "default", seconds: 39 },
  "tests/nats/host_kill_test.ts": { where: "default", seconds: 29 },
  "tests/nats/service_test.ts": { where: "default", seconds: 22 },
  "tests/nats/signing_test.ts": { where: "default", seconds: 30 },
  "tests/nats/telemetry_test.ts": { where: "default", seconds: 8 },
  "tests/nats/gpu_test.ts": { where: "default", seconds: 8 },
  "tests/nats/blocklist_test.ts": { where: "default", seconds: 30 },
  "tests/nats/priority_test.ts": { where: "default", seconds: 30 },
  "tests/nats/secure_test.ts": { where: "default", seconds: 15 },
  "tests/nats/roles_test.ts": { where: "default", seconds: 30 },
  "tests/nats/overdue_test.ts": { where: "default", seconds: 30 },
  // No Blender at all.
  "tests/blend_file_fuzz_test.ts": { where: "none", seconds: 46 },
  "tests/kernel_test.ts": { where: "none", seconds: 2 },
  "tests/plan_test.ts": { where: "none", seconds: 1 },
  "tests/timings_test.ts": { where: "none", seconds: 1 },
  "tests/python_sources_test.ts": { where: "none", seconds: 1 },
  "tests/python_syntax_test.ts": { where: "none", seconds: 3 },
  "tests/supervisor_test.ts": { where: "none", seconds: 3 },
  "tests/nats/protocol_test.ts": { where: "none", seconds: 3 },
  "tests/channel_test.ts": { where: "none", seconds: 1 },
  "tests/layout_test.ts": { where: "none", seconds: 1 },
};

/** Every `*_test.ts` under `<root>/tests` (not in fixtures or `_` folders), as "tests/..." paths, sorted. */
export function listTestFiles(root = ".", dir = "tests"): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(`${root}/${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory && !entry.name.startsWith("_") && entry.name !== "fixtures") {
      files.push(...listTestFiles(root, path));
    } else if (entry.isFile && entry.name.endsWith("_test.ts")) files.push(path);
  }
  return files.sort();
}
