/**
 * The shape of the credentials and signing options, checked before anything connects: a misspelt `signing` key
 * (`keys`, `trusts`) would otherwise turn signing off without a word.
 */

import type { NatsCredentials, NatsSigningOptions } from "../api/options.ts";

/** The options of each object, and what each holds. */
const SHAPES: Record<string, Record<string, "string" | "strings">> = {
  signing: { key: "string", trust: "strings" },
  tls: { ca: "string", cert: "string", key: "string" },
};
const CREDENTIALS = ["user", "pass", "token", "creds", "nkeySeed"] as const;

/**
 * Check `nats`'s credentials and `signing` (of `nats` itself, or given apart as a worker takes it).
 *
 * @param what The start of the error message, e.g. `"Cannot make JobManager"`.
 * @param prefix Where the options are, e.g. `"nats."`.
 * @throws {TypeError} For an option of the wrong type, or a key these options do not have.
 */
export function checkNatsOptions(
  what: string,
  nats: NatsCredentials & { signing?: NatsSigningOptions },
  prefix: string,
  signingPrefix = prefix,
): void {
  for (const name of CREDENTIALS) {
    const value = nats[name];
    if (value !== undefined && typeof value !== "string") {
      throw new TypeError(`${what} as '${prefix}${name}' must be a string: current value is ${typeof value}`);
    }
  }
  checkShape(what, "tls", nats.tls, prefix);
  checkShape(what, "signing", nats.signing, signingPrefix);
}

function checkShape(what: string, name: string, value: unknown, prefix: string): void {
  if (value === undefined) return;
  const shape = SHAPES[name]!;
  const takes = Object.keys(shape).map((key) => `'${key}'`).join(", ");
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`${what} as '${prefix}${name}' must be an object of ${takes}`);
  }
  for (const [key, item] of Object.entries(value)) {
    const kind = shape[key];
    if (kind === undefined) {
      throw new TypeError(`${what} as '${prefix}${name}' has no option '${key}' (it takes ${takes})`);
    }
    const fits = kind === "string"
      ? typeof item === "string" || item === undefined
      : Array.isArray(item) && item.every((entry) => typeof entry === "string");
    if (!fits) {
      throw new TypeError(
        `${what} as '${prefix}${name}.${key}' must be ${kind === "string" ? "a path" : "a list of paths"}`,
      );
    }
  }
}
