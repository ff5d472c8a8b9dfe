/** The error classes callers catch. */

/** Why a job was dropped. */
export type DropReason =
  | "error"
  | "crashed"
  | "timed-out"
  | "killed"
  | "start-failed"
  | "result-too-large";

/** One frame of a Python traceback, outermost first. */
export interface PythonFrame {
  /** The source file. */
  readonly file: string;
  /** The line number in `file`. */
  readonly line: number;
  /** The function, or `<module>` for top-level code. */
  readonly function: string;
  /** The source line, when Python could read it. */
  readonly code: string;
}

/** The exception a job's Python code raised, as the runtime in Blender recorded it. */
export interface PythonError {
  /**
   * Where it came from: the user's `script`, its `result` (`python_data`,
   * `data_blocks`), the `data-blocks` passed in, the `addons` the job asked
   * for (type `AddonError`, the message naming the add-on), or the bgproc
   * `runtime`.
   */
  readonly origin: "script" | "result" | "data-blocks" | "addons" | "blend-file" | "runtime";
  /** The exception's class name, e.g. `"ValueError"`. */
  readonly type: string;
  /** The exception's message. */
  readonly message: string;
  /** The traceback's frames, outermost first, without bgproc's own. */
  readonly frames: readonly PythonFrame[];
  /** The traceback as Python prints it. */
  readonly text: string;
  /** For a `SyntaxError`: the file it points at (a syntax error has no frame there). */
  readonly file?: string;
  /** For a `SyntaxError`: the line in `file` it points at. */
  readonly line?: number;
}

/** A place in the user's Python code: a file and a line in it. */
export interface SourceLocation {
  /** The file, as Python named it (absolute for a job's script). */
  readonly file: string;
  /** The line number in `file`, from 1. */
  readonly line: number;
}

/** The details a {@linkcode JobDroppedError} carries. */
export interface JobDroppedDetails {
  /** The job's name. */
  readonly jobName: string;
  /** Why it was dropped. */
  readonly reason: DropReason;
  /** One line saying what happened. */
  readonly summary: string;
  /** How many attempts were started. */
  readonly attempts: number;
  /** Blender's exit code, or `null` when it was ended by a signal or never started. */
  readonly exitCode: number | null;
  /** The signal that ended Blender, or `null`. */
  readonly signal: string | null;
  /** The Python exception, when the script raised one. */
  readonly pythonError: PythonError | null;
  /** The last lines Blender wrote to stderr. */
  readonly stderrTail: string;
  /** The last lines Blender wrote to stdout. */
  readonly stdoutTail: string;
  /** The command line of the last attempt, quoted for a POSIX shell. */
  readonly commandLine: string;
  /** The Blender (and its Python) the last attempt ran in, e.g. `"5.2.2 LTS (Python 3.14.0)"`, when it got that far. */
  readonly blender?: string;
}

/**
 * A job ended without a result: its script raised, Blender crashed or could
 * not start, it timed out, or it was killed.
 *
 * @example Tell a Python error from a crash
 * ```ts ignore
 * import { JobDroppedError, JobManager } from "@bgproc/blender";
 *
 * await using manager = new JobManager();
 * try {
 *   await manager.addJob({ script: "./might_fail.py" }).result();
 * } catch (error) {
 *   if (error instanceof JobDroppedError && error.reason === "error") {
 *     console.error(error.pythonError?.text);
 *   }
 * }
 * ```
 */
export class JobDroppedError extends Error implements JobDroppedDetails {
  /** The job's name. */
  readonly jobName: string;
  /** Why it was dropped. */
  readonly reason: DropReason;
  /** One line saying what happened. */
  readonly summary: string;
  /** How many attempts were started. */
  readonly attempts: number;
  /** Blender's exit code, or `null` when it was ended by a signal or never started. */
  readonly exitCode: number | null;
  /** The signal that ended Blender, or `null`. */
  readonly signal: string | null;
  /** The Python exception, when the script raised one. */
  readonly pythonError: PythonError | null;
  /** The last lines Blender wrote to stderr. */
  readonly stderrTail: string;
  /** The last lines Blender wrote to stdout. */
  readonly stdoutTail: string;
  /** The command line of the last attempt, quoted for a POSIX shell. */
  readonly commandLine: string;
  /** The Blender (and its Python) the last attempt ran in; absent when it never reached bgproc's runtime. */
  readonly blender?: string;
  /**
   * Where in the user's code the Python error points: for a `SyntaxError` the line it names, else the deepest
   * traceback frame in the job's script (the file the outermost frame runs), else the deepest frame; `null`
   * when there was no Python error or it has no frame outside bgproc.
   */
  readonly location: SourceLocation | null;
  /** The full human report: summary, Python traceback, stderr tail, command line. */
  readonly report: string;

  /**
   * Make the error from what the supervisor recorded.
   *
   * @param details What happened to the job.
   * @param options `cause`, when another error is behind it.
   */
  constructor(details: JobDroppedDetails, options?: ErrorOptions) {
    const location = sourceLocation(details.pythonError);
    super(`Job '${details.jobName}' was dropped (${details.reason})${at(location)}: ${details.summary}`, options);
    this.name = "JobDroppedError";
    this.location = location;
    this.jobName = details.jobName;
    this.reason = details.reason;
    this.summary = details.summary;
    this.attempts = details.attempts;
    this.exitCode = details.exitCode;
    this.signal = details.signal;
    this.pythonError = details.pythonError;
    this.stderrTail = details.stderrTail;
    this.stdoutTail = details.stdoutTail;
    this.commandLine = details.commandLine;
    if (details.blender !== undefined) this.blender = details.blender;
    this.report = formatReport(details, location);
  }
}

/** `" at raises.py:4"` (the file's last path segment), or `""` without a location. */
function at(location: SourceLocation | null): string {
  if (location === null) return "";
  const file = location.file.split(/[\\/]/).pop() || location.file;
  return ` at ${file}:${location.line}`;
}

function sourceLocation(error: PythonError | null): SourceLocation | null {
  if (error === null) return null;
  if (typeof error.file === "string" && typeof error.line === "number") return { file: error.file, line: error.line };
  const frames = error.frames;
  const script = frames[0]?.file;
  const frame = frames.findLast((frame) => frame.file === script);
  return frame === undefined ? null : { file: frame.file, line: frame.line };
}

function formatReport(details: JobDroppedDetails, location: SourceLocation | null): string {
  const attempts = `${details.attempts} attempt${details.attempts === 1 ? "" : "s"}`;
  const parts = [
    `Job '${details.jobName}' was dropped after ${attempts} (${details.reason})${at(location)}: ${details.summary}`,
  ];
  if (details.pythonError !== null) parts.push(details.pythonError.text.trimEnd());
  if (details.stderrTail.trim() !== "") {
    parts.push(`--- stderr (last lines) ---\n${details.stderrTail.trimEnd()}`);
  }
  if (details.commandLine !== "") parts.push(`--- command ---\n${details.commandLine}`);
  if (details.blender !== undefined) parts.push(`--- blender ---\nBlender ${details.blender}`);
  return parts.join("\n");
}

/**
 * No Blender executable was found: not at the `blender` option, not at
 * `$BLENDER`, not on `PATH`.
 *
 * @example Explain the fix
 * ```ts
 * import { BlenderNotFoundError, JobManager } from "@bgproc/blender";
 *
 * try {
 *   await using _manager = new JobManager({ blender: "/nowhere/blender" });
 * } catch (error) {
 *   if (!(error instanceof BlenderNotFoundError)) throw error;
 *   console.log(error.message);
 * }
 * ```
 */
export class BlenderNotFoundError extends Error {
  /** The places that were looked at, in order. */
  readonly searched: readonly string[];

  /**
   * Make the error from the places that were searched.
   *
   * @param searched The places that were looked at, in order.
   * @param options `cause`, when another error is behind it.
   */
  constructor(searched: readonly string[], options?: ErrorOptions) {
    super(
      `Cannot find Blender: looked at ${searched.join(", ")}. ` +
        "Install it (Debian/Ubuntu: `sudo apt-get install blender`; elsewhere: https://www.blender.org/download/) " +
        "or name the executable with the `blender` option or the BLENDER environment variable.",
      options,
    );
    this.name = "BlenderNotFoundError";
    this.searched = searched;
  }
}

/**
 * A job was rejected before anything started: a bad name, a missing script or
 * .blend file, passed data that JSON cannot carry, or a bad option.
 *
 * @example Catch a missing script
 * ```ts ignore
 * import { InvalidJobError, JobManager } from "@bgproc/blender";
 *
 * await using manager = new JobManager();
 * try {
 *   manager.addJob({ script: "./no_such_script.py" });
 * } catch (error) {
 *   if (error instanceof InvalidJobError) console.error(error.field, error.message);
 * }
 * ```
 */
export class InvalidJobError extends Error {
  /** The option that was wrong, e.g. `"script"` or `"passedData.size"`. */
  readonly field: string;

  /**
   * Make the error for one option.
   *
   * @param field The option that was wrong.
   * @param message What was wrong with it.
   * @param options `cause`, when another error is behind it.
   */
  constructor(field: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InvalidJobError";
    this.field = field;
  }
}

/**
 * A .blend file could not be read: it is missing or unreadable, is not a
 * .blend file, is malformed (truncated, corrupt compression, a DNA block
 * whose counts or offsets do not fit), or its .blend data is longer than the
 * reader's `maxBytes`. It is an {@linkcode InvalidJobError} (field `"path"`),
 * so callers of `addJob` that catch that catch this too.
 *
 * @example Tell a file that is too large from a broken one
 * ```ts
 * import { BlendFileError, readBlendFile } from "@bgproc/blender";
 *
 * const path = await Deno.makeTempFile({ suffix: ".blend" });
 * await Deno.writeTextFile(path, "not a blend file");
 * try {
 *   await readBlendFile(path);
 * } catch (error) {
 *   if (!(error instanceof BlendFileError)) throw error;
 *   console.log(error.kind, error.reason); // "malformed", "no BLENDER header"
 * } finally {
 *   await Deno.remove(path);
 * }
 * ```
 */
export class BlendFileError extends InvalidJobError {
  /** The file that was read. */
  readonly path: string;
  /** What was wrong, e.g. `"no BLENDER header"`. */
  readonly reason: string;
  /**
   * `"unreadable"` (the file cannot be opened or read), `"malformed"` (not a
   * .blend file bgproc can read) or `"too-large"` (longer than `maxBytes`).
   */
  readonly kind: "unreadable" | "malformed" | "too-large";

  /**
   * Make the error for one file.
   *
   * @param path The file that was read.
   * @param kind What kind of failure it is.
   * @param reason What was wrong.
   * @param options `cause`, when another error is behind it.
   */
  constructor(path: string, kind: BlendFileError["kind"], reason: string, options?: ErrorOptions) {
    super(
      "path",
      kind === "unreadable"
        ? `${path} cannot be read: ${reason}`
        : `${path} is not a .blend file bgproc can read: ${reason}`,
      options,
    );
    this.name = "BlendFileError";
    this.path = path;
    this.kind = kind;
    this.reason = reason;
  }
}

/**
 * The manager could not make its work root (the folder that holds the
 * Python runtime and the job directories): `workDir` does not exist, is not
 * a folder, or cannot be written.
 *
 * @example Report a bad workDir
 * ```ts
 * import { JobManager, WorkRootError } from "@bgproc/blender";
 *
 * try {
 *   await using _manager = new JobManager({ workDir: "/no/such/folder" });
 * } catch (error) {
 *   if (!(error instanceof WorkRootError)) throw error;
 *   console.log(error.message);
 * }
 * ```
 */
export class WorkRootError extends Error {
  /** The folder the work root was to be made in. */
  readonly workDir: string;

  /**
   * Make the error for the folder that failed.
   *
   * @param workDir The folder the work root was to be made in.
   * @param cause What went wrong.
   */
  constructor(workDir: string, cause: unknown) {
    super(
      `Cannot make the JobManager's work root in ${workDir}: ${cause instanceof Error ? cause.message : cause}`,
      { cause },
    );
    this.name = "WorkRootError";
    this.workDir = workDir;
  }
}

/**
 * `new JobManager({ nats })` cannot load the NATS client (an npm package:
 * no npm access, or a runtime without npm support). Jobs added to such a
 * manager reject with it, as does `ready()`.
 *
 * @example Tell a missing NATS client from a server that is down
 * ```ts ignore
 * import { JobManager, NatsBackendUnavailableError } from "@bgproc/blender";
 *
 * await using manager = new JobManager({ nats: { servers: "nats://127.0.0.1:4222" } });
 * try {
 *   await manager.ready();
 * } catch (error) {
 *   if (error instanceof NatsBackendUnavailableError) console.log("no NATS client here:", error.message);
 *   else throw error;
 * }
 * ```
 */
export class NatsBackendUnavailableError extends Error {
  /**
   * Make the error for the failed import.
   *
   * @param cause Why the NATS client could not be imported.
   */
  constructor(cause: unknown) {
    super(`Cannot use NATS as its client could not be loaded: ${cause instanceof Error ? cause.message : cause}`, {
      cause,
    });
    this.name = "NatsBackendUnavailableError";
  }
}
