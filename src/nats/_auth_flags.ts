/**
 * The command line's NATS credentials, the same on every command that takes `--nats` (`run`, `batch`, `render`,
 * `serve`, `worker`). Secrets come from files or the environment, never from argv (other users see it in `ps`).
 */

import type { NatsCredentials } from "../api/options.ts";

/** A credentials flag: its value placeholder (none for a switch) and its help. */
export interface AuthFlag {
  readonly value?: string;
  readonly help: string;
}

/** The flags, by name. */
export const AUTH_FLAGS: Readonly<Record<string, AuthFlag>> = {
  creds: { value: "FILE", help: "a NATS credentials file (.creds: user JWT and NKey seed)" },
  "nkey-seed": { value: "FILE", help: "a file holding a NATS user NKey seed" },
  user: { value: "NAME", help: "a NATS user; its password from --password-file or $BGPROC_NATS_PASSWORD" },
  "password-file": { value: "FILE", help: "a file holding the password of --user" },
  "token-file": { value: "FILE", help: "a file holding a NATS token (or $BGPROC_NATS_TOKEN)" },
  tls: { help: "require TLS (implied by --tls-ca, --tls-cert and --tls-key)" },
  "tls-ca": { value: "FILE", help: "the CA that signed the NATS server's certificate (PEM)" },
  "tls-cert": { value: "FILE", help: "this client's certificate, when the server verifies clients (PEM)" },
  "tls-key": { value: "FILE", help: "the key of --tls-cert (PEM)" },
};

/** The credentials the flags (and `$BGPROC_NATS_PASSWORD`, `$BGPROC_NATS_TOKEN`) give; throws a `TypeError` on a bad mix. */
export function credentialsFromFlags(flags: Readonly<Record<string, unknown>>): NatsCredentials {
  const text = (name: string) => typeof flags[name] === "string" ? flags[name] as string : undefined;
  const secret = (file: string | undefined, variable: string): string | undefined => {
    if (file !== undefined) {
      try {
        return Deno.readTextFileSync(file).replace(/\r?\n$/, "");
      } catch (error) {
        throw new TypeError(`the file ${file} cannot be read: ${error instanceof Error ? error.message : error}`);
      }
    }
    return Deno.env.get(variable) || undefined;
  };
  const user = text("user");
  const pass = user === undefined ? undefined : secret(text("password-file"), "BGPROC_NATS_PASSWORD");
  if (user !== undefined && pass === undefined) {
    throw new TypeError("--user needs its password: --password-file FILE or $BGPROC_NATS_PASSWORD");
  }
  if (user === undefined && text("password-file") !== undefined) {
    throw new TypeError("--password-file goes with --user");
  }
  const token = secret(text("token-file"), "BGPROC_NATS_TOKEN");
  const [ca, cert, key] = [text("tls-ca"), text("tls-cert"), text("tls-key")];
  if ((cert === undefined) !== (key === undefined)) throw new TypeError("--tls-cert and --tls-key go together");
  const tls = flags.tls === true || ca !== undefined || cert !== undefined;
  return {
    ...(user === undefined ? {} : { user, pass: pass! }),
    ...(token === undefined ? {} : { token }),
    ...(text("creds") === undefined ? {} : { creds: text("creds")! }),
    ...(text("nkey-seed") === undefined ? {} : { nkeySeed: text("nkey-seed")! }),
    ...(tls
      ? {
        tls: {
          ...(ca === undefined ? {} : { ca }),
          ...(cert === undefined ? {} : { cert }),
          ...(key === undefined ? {} : { key }),
        },
      }
      : {}),
  };
}

/** The flags' lines for a usage text, aligned at `width`. */
export function authUsage(width: number): string {
  return Object.entries(AUTH_FLAGS).map(([name, flag]) =>
    `  ${`--${name}${flag.value === undefined ? "" : ` ${flag.value}`}`.padEnd(width)}${flag.help}`
  ).join("\n");
}
