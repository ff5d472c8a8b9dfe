/**
 * Batch files: a JSONC list of jobs (comments and trailing commas allowed), or `{ "jobs": [...] }`. Syntax
 * errors point at line:column with the source line and a caret; unknown fields get a suggestion. Paths in an
 * entry (`script`, `blend`, and the `data`/`args` values it lists in `paths`) resolve against the file's folder.
 */

import { parse as parseJsonc, type ParseError, type ParseErrorCode } from "jsonc-parser";
import { dirname, resolve } from "node:path";
import type { AddJobOptions } from "../api/options.ts";
import type { JsonObject, JsonValue } from "../types.ts";
import { UsageError } from "./_errors.ts";
import { didYouMean } from "../_suggest.ts";

/** The fields a batch entry may have. */
export const BATCH_FIELDS = [
  "name",
  "script",
  "blend",
  "data",
  "timeout",
  "args",
  "paths",
  "factoryStartup",
  "addons",
] as const;

const MESSAGES: Record<number, string> = {
  1: "invalid symbol",
  2: "invalid number format",
  3: "a property name was expected",
  4: "a value was expected",
  5: "a colon was expected",
  6: "a comma was expected",
  7: "a closing brace '}' was expected",
  8: "a closing bracket ']' was expected",
  9: "the file ended too early",
  10: "invalid comment token",
  11: "unexpected end of comment",
  12: "unexpected end of string",
  13: "unexpected end of number",
  14: "invalid unicode escape",
  15: "invalid escape character",
  16: "invalid character",
};

/** `file:line:column: message`, and the source line with a caret under the column. */
export function located(text: string, file: string, offset: number, message: string): UsageError {
  const lineStart = text.lastIndexOf("\n", offset - 1) + 1;
  const lineEnd = text.indexOf("\n", offset) < 0 ? text.length : text.indexOf("\n", offset);
  const line = text.slice(0, offset).split("\n").length;
  const column = offset - lineStart + 1;
  const source = text.slice(lineStart, lineEnd).replaceAll("\t", " ");
  return new UsageError(`${file}:${line}:${column}: ${message}`, `  ${source}\n  ${" ".repeat(column - 1)}^`);
}

/** Replace the string at `pointer` (`"data/input"`, `"args/1"`) in `entry` with `resolve(base, it)`. */
function resolvePointer(entry: Record<string, unknown>, pointer: string, base: string, where: string): void {
  const keys = pointer.split("/");
  if (keys[0] !== "data" && keys[0] !== "args") {
    throw new UsageError(`${where}.paths: '${pointer}' must start with 'data/' or 'args/'`);
  }
  let holder: Record<string, unknown> | unknown[] = entry;
  for (const key of keys.slice(0, -1)) {
    const next: unknown = (holder as Record<string, unknown>)[key];
    if (typeof next !== "object" || next === null) {
      throw new UsageError(`${where}.paths: '${pointer}' is not in the entry`);
    }
    holder = next as Record<string, unknown>;
  }
  const last = keys.at(-1)!;
  const value = (holder as Record<string, unknown>)[last];
  if (typeof value !== "string") throw new UsageError(`${where}.paths: '${pointer}' is not a string in the entry`);
  (holder as Record<string, unknown>)[last] = resolve(base, value);
}

/**
 * Read a batch file's text into `addJob` options.
 *
 * @param text The file's text.
 * @param file The file's path as the user gave it (for messages).
 * @param absolute The file's absolute path (entries' paths resolve against its folder).
 * @throws {UsageError} For a syntax error (with line:column and a caret) or a bad entry.
 */
export function parseBatch(text: string, file: string, absolute: string): AddJobOptions[] {
  const errors: ParseError[] = [];
  const parsed = parseJsonc(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    const first = errors[0]!;
    throw located(text, file, first.offset, MESSAGES[first.error as ParseErrorCode] ?? "syntax error");
  }
  const list = Array.isArray(parsed) ? parsed : parsed?.jobs;
  if (!Array.isArray(list)) throw new UsageError(`${file}: expected a list of jobs, or { "jobs": [...] }`);
  const base = dirname(absolute);
  const known = new Set<string>(BATCH_FIELDS);
  return named(
    list.map((raw: unknown, index: number) => {
      const where = `${file}: jobs[${index}]`;
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        throw new UsageError(`${where} must be an object`);
      }
      const job = structuredClone(raw) as Record<string, unknown>;
      for (const key of Object.keys(job)) {
        if (!known.has(key)) throw new UsageError(`${where} has an unknown field '${key}'${didYouMean(key, known)}`);
      }
      if (typeof job.script !== "string") throw new UsageError(`${where}.script must be a string`);
      if (job.name !== undefined && typeof job.name !== "string") {
        throw new UsageError(`${where}.name must be a string`);
      }
      if (job.blend !== undefined && typeof job.blend !== "string") {
        throw new UsageError(`${where}.blend must be a string`);
      }
      if (job.data !== undefined && (typeof job.data !== "object" || job.data === null || Array.isArray(job.data))) {
        throw new UsageError(`${where}.data must be an object`);
      }
      if (job.timeout !== undefined && !(typeof job.timeout === "number" && job.timeout > 0)) {
        throw new UsageError(`${where}.timeout must be a positive number of seconds`);
      }
      if (job.args !== undefined && !(Array.isArray(job.args) && job.args.every((a) => typeof a === "string"))) {
        throw new UsageError(`${where}.args must be a list of strings`);
      }
      if (job.paths !== undefined && !(Array.isArray(job.paths) && job.paths.every((p) => typeof p === "string"))) {
        throw new UsageError(`${where}.paths must be a list like ["data/input", "args/1"]`);
      }
      if (job.factoryStartup !== undefined && typeof job.factoryStartup !== "boolean") {
        throw new UsageError(`${where}.factoryStartup must be true or false`);
      }
      if (job.addons !== undefined && !(Array.isArray(job.addons) && job.addons.every((a) => typeof a === "string"))) {
        throw new UsageError(`${where}.addons must be a list of add-on module names`);
      }
      for (const pointer of (job.paths as string[] | undefined) ?? []) resolvePointer(job, pointer, base, where);
      return {
        script: resolve(base, job.script),
        ...(job.name === undefined ? {} : { name: job.name as string }),
        ...(job.blend === undefined ? {} : { blendFile: resolve(base, job.blend as string) }),
        ...(job.data === undefined ? {} : { passedData: job.data as JsonObject }),
        ...(job.timeout === undefined ? {} : { timeout: (job.timeout as number) * 1000 }),
        ...(job.args === undefined ? {} : { args: job.args as string[] }),
        ...(job.factoryStartup === undefined ? {} : { factoryStartup: job.factoryStartup as boolean }),
        ...(job.addons === undefined ? {} : { addons: job.addons as string[] }),
      };
    }),
    file,
  );
}

/**
 * Every entry with a name, the one shown on screen, used for `--output DIR/NAME` and reported: an unnamed
 * entry is `job-N` by its place in the file (from 1; `job-N-2`, ... when an entry is named so already).
 *
 * @throws {UsageError} When two entries have the same name, naming both.
 */
function named(jobs: AddJobOptions[], file: string): AddJobOptions[] {
  const taken = new Map<string, number>();
  for (const [index, job] of jobs.entries()) {
    if (job.name === undefined) continue;
    const first = taken.get(job.name);
    if (first !== undefined) {
      throw new UsageError(`${file}: jobs[${index}] is named '${job.name}', as jobs[${first}] is: names must differ`);
    }
    taken.set(job.name, index);
  }
  return jobs.map((job, index) => {
    if (job.name !== undefined) return job;
    let name = `job-${index + 1}`;
    for (let n = 2; taken.has(name); n++) name = `job-${index + 1}-${n}`;
    taken.set(name, index);
    return { name, ...job };
  });
}

/** `--data KEY=VALUE`: the value as JSON when it parses, else as a string. */
export function dataEntry(entry: string): [string, JsonValue] {
  const at = entry.indexOf("=");
  if (at <= 0) throw new UsageError(`--data takes KEY=VALUE, not '${entry}'`);
  const text = entry.slice(at + 1);
  try {
    return [entry.slice(0, at), JSON.parse(text)];
  } catch {
    return [entry.slice(0, at), text];
  }
}
