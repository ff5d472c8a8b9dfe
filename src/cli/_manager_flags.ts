/** The flags every job-running command takes for its JobManager, and the output flags of run and batch. */

import type { NatsCredentials, NatsSigningOptions } from "../api/options.ts";
import { AUTH_FLAGS, credentialsFromFlags } from "../nats/_auth_flags.ts";
import { JobManager } from "../api/job_manager.ts";
import type { JobManagerOptions } from "../api/options.ts";
import { addonsProblem } from "../_validate.ts";
import { type Flags, type FlagSpecs, positiveNumber } from "./_args.ts";
import { EnvironmentError, UsageError } from "./_errors.ts";
import { userPath } from "./_paths.ts";

/** `--workers`, `--attempts`, `--mode`, `--blender`, `--no-factory-startup`, `--addon`. */
export const MANAGER_FLAGS: FlagSpecs = {
  workers: { type: "string", value: "N", help: "run up to N jobs at once (default: 2)" },
  attempts: { type: "string", value: "N", help: "start a failing job up to N times (default: 1; 3 with --nats)" },
  mode: {
    type: "string",
    value: "MODE",
    help: "fork (a child of a warm Blender per job, default), process (one Blender per job) or pool (warm Blenders)",
  },
  blender: { type: "string", value: "PATH", help: "the Blender executable (default: $BLENDER, else blender on PATH)" },
  "no-factory-startup": {
    type: "boolean",
    help: "start Blender as plain blender -b does: the user's preferences, add-ons and scripts",
  },
  addon: {
    type: "string",
    multiple: true,
    value: "NAME",
    help: "enable this add-on (module name, e.g. node_wrangler) before each script runs",
  },
};

/** `--json`, `--verbose`/`--logs`, `--log-file`, `--output`. */
export const OUTPUT_FLAGS: FlagSpecs = {
  output: {
    type: "string",
    value: "DIR",
    help: "keep the files each job writes (renders to //, Saved: files) in DIR, relative paths kept",
  },
  json: { type: "boolean", help: "print the result as JSON on stdout" },
  verbose: { type: "boolean", short: "v", aliases: ["logs"], help: "stream each job's output, prefixed by its name" },
  "log-file": { type: "string", value: "FILE", help: "append each job's output, prefixed by its name, to FILE" },
};

/** The NATS credentials flags (see `nats/_auth_flags.ts`), as every command with `--nats` takes them. */
export const AUTH_FLAG_SPECS: FlagSpecs = Object.fromEntries(
  Object.entries(AUTH_FLAGS).map(([name, flag]) => [name, {
    type: flag.value === undefined ? "boolean" : "string",
    ...(flag.value === undefined ? {} : { value: flag.value }),
    help: `with --nats: ${flag.help}`,
  }]),
) as FlagSpecs;

/** `--signing-key` and `--trust`: signed jobs and results (`bgproc keygen` makes the key files). */
export function signingFlagSpecs(side: "host" | "worker"): FlagSpecs {
  const [signs, trusts] = side === "host" ? ["jobs", "results of"] : ["results", "jobs signed by"];
  const prefix = side === "host" ? "with --nats: " : "";
  return {
    "signing-key": {
      type: "string",
      value: "FILE",
      help: `${prefix}sign this ${side}'s ${signs} with this private key`,
    },
    trust: {
      type: "string",
      value: "FILE",
      multiple: true,
      help: `${prefix}take only ${trusts} the ${side === "host" ? "worker" : "host"} with this public key`,
    },
  };
}

/** `--nats`, `--namespace`, the credentials and signing: run the jobs on NATS workers instead of here. */
export const CLUSTER_FLAGS: FlagSpecs = {
  nats: { type: "string", value: "URL", help: "run the jobs on bgproc workers fed by this NATS server" },
  namespace: { type: "string", value: "NAME", help: "with --nats: the namespace of the jobs (default: default)" },
  ...AUTH_FLAG_SPECS,
  ...signingFlagSpecs("host"),
};

/** The key files of `--signing-key` and `--trust`, where the user typed them, or `undefined` without either. */
export function cliSigning(flags: Flags): NatsSigningOptions | undefined {
  const key = typeof flags["signing-key"] === "string" ? userPath(flags["signing-key"]) : undefined;
  const trust = Array.isArray(flags.trust) ? flags.trust.map((path) => userPath(String(path))) : [];
  if (key === undefined && trust.length === 0) return undefined;
  return { ...(key === undefined ? {} : { key }), ...(trust.length === 0 ? {} : { trust }) };
}

/** What run and batch need of a manager, local or over NATS. */
export type CliManager = JobManager;

/**
 * A local JobManager from the flags, or with `--nats` one on NATS workers (its client is loaded only then). With
 * `--nats`, Blender, mode and slots are the workers' (`bgproc worker`), so those flags are refused here.
 */
export async function openManager(flags: Flags): Promise<CliManager> {
  if (typeof flags.nats !== "string") {
    for (const name of ["namespace", "signing-key", "trust", ...Object.keys(AUTH_FLAGS)]) {
      if (flags[name] !== undefined) throw new UsageError(`--${name} goes with --nats URL`);
    }
    return new JobManager(managerOptions(flags));
  }
  const credentials = cliCredentials(flags);
  const signing = cliSigning(flags);
  for (const name of ["workers", "mode", "blender"]) {
    if (flags[name] !== undefined) {
      throw new UsageError(`--${name} is the workers' with --nats (see 'bgproc help worker')`);
    }
  }
  // --no-factory-startup, --addon and --attempts travel with each job to the workers.
  const { factoryStartup, addons, maxAttempts } = managerOptions(flags);
  const manager = new JobManager({
    nats: {
      servers: flags.nats,
      ...(typeof flags.namespace === "string" ? { namespace: flags.namespace } : {}),
      ...credentials,
      ...(signing === undefined ? {} : { signing }),
    },
    ...(maxAttempts === undefined ? {} : { maxAttempts }),
    ...(factoryStartup === undefined ? {} : { factoryStartup }),
    ...(addons === undefined ? {} : { addons }),
  });
  try {
    await manager.ready();
  } catch (error) {
    await manager.close();
    throw new EnvironmentError((error as Error).message);
  }
  return manager;
}

/** The manager's options from the flags. */
export function managerOptions(flags: Flags): JobManagerOptions {
  const mode = flags.mode;
  if (mode !== undefined && mode !== "process" && mode !== "pool" && mode !== "fork") {
    throw new UsageError(`--mode must be 'process', 'fork' or 'pool', not '${mode}'`);
  }
  const workers = positiveNumber(flags, "workers", true);
  const attempts = positiveNumber(flags, "attempts", true);
  const blender = flags.blender;
  const addons: string[] = [];
  const problem = flags.addon === undefined ? undefined : addonsProblem(flags.addon, addons);
  if (problem !== undefined) throw new UsageError(`--addon ${problem}`);
  return {
    ...(flags["no-factory-startup"] === true ? { factoryStartup: false } : {}),
    ...(addons.length === 0 ? {} : { addons }),
    ...(workers === undefined ? {} : { maxWorkers: workers }),
    ...(attempts === undefined ? {} : { maxAttempts: attempts }),
    ...(mode === undefined ? {} : { mode }),
    // A relative path with a slash is the user's file; a bare name is looked up on PATH.
    ...(typeof blender === "string" ? { blender: blender.includes("/") ? userPath(blender) : blender } : {}),
  };
}

/** The NATS credentials of the flags, their files found where the user typed them; a bad mix is a usage error. */
export function cliCredentials(flags: Flags): NatsCredentials {
  const located: Flags = { ...flags };
  for (const [name, flag] of Object.entries(AUTH_FLAGS)) {
    const value = flags[name];
    if (flag.value === "FILE" && typeof value === "string") located[name] = userPath(value);
  }
  try {
    return credentialsFromFlags(located);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}
