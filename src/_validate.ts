/** Checks on what users hand in, made before anything starts. */

import { RETRYABLE_REASONS } from "./local/policy.ts";
import { dirname, resolve } from "node:path";
import { type BlendFileInfo, readBlendFileSync } from "./blend/read.ts";
import { type DropReason, InvalidJobError } from "./errors.ts";
import { DATA_BLOCK_COLLECTIONS } from "./types.ts";
import type { JsonObject } from "./types.ts";

/** The longest job name, in Unicode code points (characters as a person counts them, not UTF-16 units). */
export const MAX_NAME_LENGTH = 128;

/**
 * Characters no job name may hold: `/`, `\`, control characters (C0 with NUL, DEL, C1), the line and paragraph
 * separators, and the bidirectional overrides and isolates (they make a name display as another).
 */
const FORBIDDEN = /[/\\\p{Cc}\p{Zl}\p{Zp}\u202A-\u202E\u2066-\u2069]/u;

/**
 * Throw unless `name` is a usable job name: 1 to 128 printable Unicode characters (code points), none of them
 * `/`, `\`, NUL or another control character, no unpaired surrogate, not starting with `.`, and no white space at
 * either end (inside is fine: `"test1.py_Square Object"`, `"test1.py_Würfel"`, `"レンダー 010"`). The job
 * directory's name is derived from it (`jobDirName` in `local/job/dir.ts`), never the name itself.
 */
export function checkJobName(name: unknown): string {
  if (typeof name !== "string") {
    throw new InvalidJobError("name", `Cannot add job as 'name' must be a string: current value is ${describe(name)}`);
  }
  const problem = nameProblem(name);
  if (problem !== undefined) {
    throw new InvalidJobError("name", `Cannot add job as 'name' ${problem}: current value is ${JSON.stringify(name)}`);
  }
  return name;
}

function nameProblem(name: string): string | undefined {
  if (!name.isWellFormed()) return "must be valid Unicode (it has an unpaired surrogate)";
  const length = [...name].length;
  if (length === 0 || length > MAX_NAME_LENGTH) {
    return `must be 1 to ${MAX_NAME_LENGTH} characters long (it has ${length})`;
  }
  const bad = FORBIDDEN.exec(name);
  if (bad !== null) {
    const code = `U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
    return `must not contain '/', '\\' or control characters (it has ${code} at ${
      [...name.slice(0, bad.index)].length
    })`;
  }
  if (name.startsWith(".")) return "must not start with '.'";
  if (name.trim() !== name) return "must not start or end with white space";
  return undefined;
}

/** An add-on's module name: a Python module path such as `node_wrangler` or `bl_ext.blender_org.looptools`. */
const ADDON_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/**
 * Why `value` is not a list of add-on module names, or `undefined` when it is one; `names` gets the names, in
 * order, without repeats.
 */
export function addonsProblem(value: unknown, names: string[]): string | undefined {
  if (!Array.isArray(value)) return `must be an array of add-on module names: current value is ${describe(value)}`;
  for (const name of value) {
    if (typeof name !== "string" || name.length > 256 || !ADDON_NAME.test(name)) {
      return `must hold add-on module names such as "node_wrangler" or "bl_ext.blender_org.looptools": ` +
        `current value has ${describe(name)}`;
    }
    if (!names.includes(name)) names.push(name);
  }
  return undefined;
}

/** Throw unless `value` is a list of add-on module names; return them without repeats. */
export function checkAddons(value: unknown): string[] {
  const names: string[] = [];
  const problem = addonsProblem(value, names);
  if (problem !== undefined) throw new InvalidJobError("addons", `Cannot add job as 'addons' ${problem}`);
  return names;
}

/**
 * Throw (`make` builds the error) unless `path` can be an output folder: a folder, or a path where none exists
 * yet (it is made when the first output arrives); return it absolute.
 */
export function checkOutputDir(
  what: string,
  path: unknown,
  make: (message: string) => Error = (message) => new InvalidJobError("outputDir", message),
): string {
  if (typeof path !== "string" || path === "") {
    throw make(`${what} as 'outputDir' must be a folder's path: current value is ${describe(path)}`);
  }
  const absolute = resolve(path);
  let info: Deno.FileInfo | undefined;
  try {
    info = Deno.statSync(absolute);
  } catch {
    // Made when the first output arrives.
  }
  if (info !== undefined && !info.isDirectory) throw make(`${what} as 'outputDir' ${absolute} is not a folder`);
  return absolute;
}

/** The values of the `progress` option. */
const PROGRESS_SOURCES = ["auto", "script", "render"] as const;

/** Throw (`make` builds the error, naming `what`) unless `value` is a `progress` option's value. */
export function checkProgressSource(
  what: string,
  value: unknown,
  make: (message: string) => Error = (message) => new InvalidJobError("progress", message),
): typeof PROGRESS_SOURCES[number] {
  if (PROGRESS_SOURCES.includes(value as never)) return value as typeof PROGRESS_SOURCES[number];
  throw make(`${what} as 'progress' must be "auto", "script" or "render": current value is ${describe(value)}`);
}

/** Throw unless `value` is a boolean. */
export function checkFactoryStartup(value: unknown): boolean {
  if (typeof value === "boolean") return value;
  throw new InvalidJobError(
    "factoryStartup",
    `Cannot add job as 'factoryStartup' must be a boolean: current value is ${describe(value)}`,
  );
}

/** Throw unless `path` names an existing regular file; return it absolute. */
export function checkFile(field: string, path: unknown): string {
  if (typeof path !== "string" || path === "") {
    throw new InvalidJobError(
      field,
      `Cannot add job as '${field}' must be a file path: current value is ${describe(path)}`,
    );
  }
  const absolute = resolve(path);
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(absolute);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound
      ? "does not exist"
      : `cannot be read (${(error as Error).message})`;
    throw new InvalidJobError(field, `Cannot add job as '${field}' ${absolute} ${why}`, { cause: error });
  }
  if (!info.isFile) {
    throw new InvalidJobError(field, `Cannot add job as '${field}' ${absolute} is not a file`);
  }
  return absolute;
}

/** Throw unless `value` is a JSON object that survives the trip to Python unchanged; return it as JSON text. */
export function checkPassedData(value: unknown): string {
  if (value === undefined) return "{}";
  if (!isPlainObject(value)) {
    throw new InvalidJobError(
      "passedData",
      `Cannot add job as 'passedData' must be a plain object: current value is ${describe(value)}`,
    );
  }
  checkJson(value, "passedData", new Set(), 0);
  return JSON.stringify(value);
}

/**
 * The deepest nesting of arrays and objects `passedData` may have: Python reads it back recursively, and its default
 * recursion limit (1,000 frames) is shared with the runtime and the script.
 */
export const MAX_PASSED_DATA_DEPTH = 500;

function checkJson(value: unknown, path: string, seen: Set<object>, depth: number): void {
  switch (typeof value) {
    case "string":
      return checkUnicode(value, path, "");
    case "boolean":
      return;
    case "number":
      if (Number.isFinite(value)) return;
      break;
    case "object":
      if (value === null) return;
      if (seen.has(value)) {
        throw new InvalidJobError(path, `Cannot add job as '${path}' refers back to itself (a cycle)`);
      }
      if (depth >= MAX_PASSED_DATA_DEPTH) {
        throw new InvalidJobError(
          path,
          `Cannot add job as '${path}' is nested ${MAX_PASSED_DATA_DEPTH} levels deep: at most ` +
            `${MAX_PASSED_DATA_DEPTH - 1} levels of arrays and objects reach Python`,
        );
      }
      seen.add(value);
      if (Array.isArray(value)) {
        value.forEach((item, index) => checkJson(item, `${path}[${index}]`, seen, depth + 1));
      } else if (isPlainObject(value)) {
        const symbol = Object.getOwnPropertySymbols(value)[0];
        if (symbol !== undefined) {
          throw new InvalidJobError(
            path,
            `Cannot add job as '${path}' has a symbol key (${String(symbol)}), which JSON would drop silently`,
          );
        }
        for (const [key, item] of Object.entries(value)) {
          checkUnicode(key, `${path}.${key}`, "the key of ");
          checkJson(item, `${path}.${key}`, seen, depth + 1);
        }
      } else {
        break;
      }
      seen.delete(value);
      return;
  }
  throw new InvalidJobError(
    path,
    `Cannot add job as '${path}' is not a JSON value (null, boolean, finite number, string, array or plain object): ` +
      `current value is ${describe(value)}`,
  );
}

/** Throw unless `text` is well-formed Unicode: a lone surrogate cannot be encoded as UTF-8 for Python. */
function checkUnicode(text: string, path: string, what: string): void {
  if (text.isWellFormed()) return;
  const chars = [...text]; // Code points: a lone surrogate is one of its own.
  const at = chars.findIndex((char) => !char.isWellFormed());
  const unit = chars[at]!.charCodeAt(0).toString(16);
  throw new InvalidJobError(
    path,
    `Cannot add job as ${what}'${path}' holds a lone surrogate (\\u${unit} at character ${at}), which is not ` +
      "Unicode and cannot reach Python",
  );
}

function isPlainObject(value: unknown): value is JsonObject {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Throw a `RangeError` unless `value` is an integer of at least `min`. */
export function checkInteger(what: string, field: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`${what} as '${field}' must be an integer >= ${min}: current value is ${describe(value)}`);
  }
  return value;
}

/** The longest delay a timer can hold (about 24.8 days); longer ones would fire at once. */
export const MAX_DELAY_MS = 2 ** 31 - 1;

/** Throw unless `value` is a number of milliseconds from 0 to `MAX_DELAY_MS`. */
export function checkTimeout(value: unknown): number {
  if (typeof value !== "number" || !(value >= 0 && value <= MAX_DELAY_MS)) {
    throw new InvalidJobError(
      "timeout",
      `Cannot add job as 'timeout' must be from 0 to ${MAX_DELAY_MS} ms: current value is ${describe(value)}`,
    );
  }
  return value;
}

/** Throw unless `path` is an existing file that starts like a .blend file (plain, gzip or zstd); return it absolute. */
export function checkBlendFile(path: unknown, field = "blendFile"): string {
  const absolute = checkFile(field, path);
  const head = new Uint8Array(7);
  let read = 0;
  try {
    using file = Deno.openSync(absolute);
    read = file.readSync(head) ?? 0;
  } catch (error) {
    throw new InvalidJobError(field, `Cannot add job as '${field}' ${absolute} cannot be read`, { cause: error });
  }
  const magic = new TextDecoder().decode(head.subarray(0, read));
  const gzip = head[0] === 0x1f && head[1] === 0x8b;
  const zstd = head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd;
  if (magic !== "BLENDER" && !gzip && !zstd) {
    throw new InvalidJobError(field, `Cannot add job as '${field}' ${absolute} is not a .blend file`);
  }
  return absolute;
}

/** Throw unless `value` is an array of strings. */
export function checkArgs(value: unknown): string[] {
  if (!Array.isArray(value) || value.some((arg) => typeof arg !== "string")) {
    throw new InvalidJobError(
      "args",
      `Cannot add job as 'args' must be an array of strings: current value is ${describe(value)}`,
    );
  }
  return [...value];
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? value.slice(0, 60) + "…" : value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return value.toString();
  if (typeof value === "object" && value !== null) {
    return Array.isArray(value) ? "an array" : `an instance of ${value.constructor?.name ?? "Object"}`;
  }
  return String(value);
}

/** Throw a `RangeError` unless `value` is a finite number of at least `min`. */
export function checkNumber(what: string, field: string, value: number, min: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
    throw new RangeError(`${what} as '${field}' must be a number >= ${min}: current value is ${describe(value)}`);
  }
  return value;
}

/** Throw a `RangeError` unless every reason is one that can be retried. */
export function checkRetryReasons(reasons: readonly DropReason[]): ReadonlySet<DropReason> {
  for (const reason of reasons) {
    if (!RETRYABLE_REASONS.includes(reason)) {
      throw new RangeError(
        `Cannot make JobManager as 'retry.on' may hold ${RETRYABLE_REASONS.map((r) => `"${r}"`).join(", ")}: ` +
          `current value has ${describe(reason)}`,
      );
    }
  }
  return new Set(reasons);
}

/** Throw unless `path` is a file path whose folder exists; return it absolute. */
export function checkFileTarget(path: unknown, field = "logFile"): string {
  if (typeof path !== "string" || path === "") {
    throw new InvalidJobError(
      field,
      `Cannot add job as '${field}' must be a file path: current value is ${describe(path)}`,
    );
  }
  const absolute = resolve(path);
  let isDirectory = false;
  try {
    isDirectory = Deno.statSync(dirname(absolute)).isDirectory;
  } catch {
    // Reported below.
  }
  try {
    if (Deno.statSync(absolute).isDirectory) {
      throw new InvalidJobError(field, `Cannot add job as '${field}' ${absolute} is a folder, not a file`);
    }
  } catch (error) {
    if (error instanceof InvalidJobError) throw error;
  }
  if (!isDirectory) {
    throw new InvalidJobError(field, `Cannot add job as the folder of '${field}' ${absolute} does not exist`);
  }
  return absolute;
}

/** Passed data blocks as the runtime takes them: a library and, per collection, names. */
export interface CheckedDataBlocks {
  readonly path: string;
  readonly blocks: Readonly<Record<string, readonly string[]>>;
}

/**
 * Throw unless `value` selects data blocks that its .blend file holds (read
 * here, without Blender); return the library and names, or `null` when it
 * selects none.
 */
export function checkPassedDataBlocks(value: unknown, field = "passedDataBlocks"): CheckedDataBlocks | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidJobError(
      field,
      `Cannot add job as '${field}' must be { from, objects?, meshes?, ... } or a job's dataBlocks: ` +
        `current value is ${describe(value)}`,
    );
  }
  const record = value as Record<string, unknown>;
  const source = "from" in record ? record.from : record.path;
  const path = checkFile(`${field}.from`, source);
  let info: BlendFileInfo;
  try {
    info = readBlendFileSync(path);
  } catch (error) {
    throw new InvalidJobError(`${field}.from`, `Cannot add job as ${(error as Error).message}`, { cause: error });
  }
  const blocks: Record<string, string[]> = {};
  for (const [key, entry] of Object.entries(record)) {
    if (key === "from" || key === "path") continue;
    if (!(DATA_BLOCK_COLLECTIONS as readonly string[]).includes(key)) {
      throw new InvalidJobError(
        `${field}.${key}`,
        `Cannot add job as '${field}.${key}' is not a data-block collection (${DATA_BLOCK_COLLECTIONS.join(", ")})`,
      );
    }
    if (!Array.isArray(entry)) {
      throw new InvalidJobError(`${field}.${key}`, `Cannot add job as '${field}.${key}' must be an array of names`);
    }
    // From a job's result, the blocks the script returned: they bring what they use (the others listed) along.
    const names = entry.filter((item) => (item as { returned?: unknown } | null)?.returned !== false).map((item) =>
      typeof item === "object" && item !== null ? (item as { name: unknown }).name : item
    );
    if (names.some((name) => typeof name !== "string")) {
      throw new InvalidJobError(`${field}.${key}`, `Cannot add job as '${field}.${key}' must hold names (strings)`);
    }
    if (names.length === 0) continue;
    const available = info.ids.filter((id) => id.collection === key).map((id) => id.name);
    const missing = (names as string[]).filter((name) => !available.includes(name));
    if (missing.length > 0) {
      throw new InvalidJobError(
        `${field}.${key}`,
        `Cannot add job as ${path} has no ${key} named ${missing.map((n) => JSON.stringify(n)).join(", ")} ` +
          `(it has: ${available.map((n) => JSON.stringify(n)).join(", ") || "none"})`,
      );
    }
    blocks[key] = names as string[];
  }
  return Object.keys(blocks).length === 0 ? null : { path, blocks };
}
