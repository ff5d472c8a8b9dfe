/**
 * A small flag parser with "did you mean" for mistyped flags. Hand-written rather than `node:util`'s
 * `parseArgs`, whose errors tell the user to put unknown flags after `--` (which here means the script's own
 * arguments), and rather than cac or commander, whose help and error output we would have to override anyway.
 */

import { UsageError } from "./_errors.ts";
import { didYouMean } from "../_suggest.ts";

/** One flag a command takes. */
export interface FlagSpec {
  readonly type: "string" | "boolean";
  readonly multiple?: boolean;
  readonly short?: string;
  /** Other names for the same flag (`--logs` for `--verbose`). */
  readonly aliases?: readonly string[];
  /** The value's placeholder in the help, e.g. `FILE`. */
  readonly value?: string;
  readonly help: string;
}

/** A command's flags, by long name. */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** Parsed flags: strings, booleans, or lists for repeatable flags. */
export type Flags = Record<string, string | boolean | string[] | undefined>;

/** What a command line holds: flags, positionals, and what came after `--`. */
export interface Parsed {
  readonly flags: Flags;
  readonly positionals: string[];
  readonly rest: string[];
}

/** The `-h, --help` flag every command takes. */
export const HELP: FlagSpecs = { help: { type: "boolean", short: "h", help: "show this help" } };

/**
 * Parse `args` by `specs`.
 *
 * @throws {UsageError} For an unknown flag (with a suggestion), a missing value, or a value given to a switch.
 */
export function parseFlags(command: string, args: readonly string[], specs: FlagSpecs): Parsed {
  const all: FlagSpecs = { ...specs, ...HELP };
  const byName = new Map<string, string>();
  for (const [name, spec] of Object.entries(all)) {
    byName.set(`--${name}`, name);
    for (const alias of spec.aliases ?? []) byName.set(`--${alias}`, name);
    if (spec.short !== undefined) byName.set(`-${spec.short}`, name);
  }
  const flags: Flags = {};
  const positionals: string[] = [];
  let rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      rest = args.slice(i + 1);
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const equals = arg.indexOf("=");
    const given = arg.startsWith("--") && equals > 0 ? arg.slice(0, equals) : arg;
    const name = byName.get(given);
    if (name === undefined) {
      const longNames = [...byName.keys()].filter((key) => key.startsWith("--")).map((key) => key.slice(2));
      const hint = didYouMean(given.replace(/^-+/, ""), longNames, "--");
      throw new UsageError(`${command}: unknown flag '${given}'${hint || ` (see 'bgproc help ${command}')`}`);
    }
    const spec = all[name]!;
    let value: string | boolean;
    if (spec.type === "boolean") {
      if (given !== arg) throw new UsageError(`${command}: --${name} is a switch and takes no value`);
      value = true;
    } else if (given !== arg) {
      value = arg.slice(equals + 1);
    } else {
      const next = args[i + 1];
      if (next === undefined || (next.startsWith("--") && next.length > 2)) {
        throw new UsageError(
          `${command}: --${name} needs a value${spec.value === undefined ? "" : ` (${spec.value})`}`,
        );
      }
      value = next;
      i++;
    }
    if (spec.multiple) flags[name] = [...(flags[name] as string[] | undefined ?? []), value as string];
    else flags[name] = value;
  }
  return { flags, positionals, rest };
}

/** The options part of a command's help, from its specs. */
export function describeFlags(specs: FlagSpecs): string {
  const rows = Object.entries({ ...specs, ...HELP }).map(([name, spec]) => {
    const names = [
      ...(spec.short === undefined ? [] : [`-${spec.short}`]),
      `--${name}`,
      ...(spec.aliases ?? []).map((alias) => `--${alias}`),
    ].join(", ");
    return [
      `${names}${spec.value === undefined ? "" : ` ${spec.value}`}`,
      spec.help + (spec.multiple ? "; repeatable" : ""),
    ];
  });
  const width = Math.max(...rows.map(([left]) => left!.length));
  return rows.map(([left, right]) => `  ${left!.padEnd(width)}  ${right}`).join("\n");
}

/** A flag's value as a positive number, or `undefined` when not given. */
export function positiveNumber(flags: Flags, name: string, integer: boolean, allowZero = false): number | undefined {
  const value = flags[name];
  if (value === undefined) return undefined;
  const number = Number(value);
  if (
    typeof value !== "string" || value.trim() === "" || !Number.isFinite(number) || number < 0 ||
    (!allowZero && number === 0) || (integer && !Number.isInteger(number))
  ) {
    const what = integer ? "whole number" : "number";
    throw new UsageError(`--${name} must be a ${allowZero ? "non-negative" : "positive"} ${what}, not '${value}'`);
  }
  return number;
}
