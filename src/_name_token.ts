/**
 * Job names as NATS subject tokens and KV keys. Job names may hold any printable Unicode but `/` and `\`
 * (`"test1.py_Würfel"`, `"レンダー 010"`); a NATS subject token may not hold `.`, `*`, `>` or white space, and a
 * KV key (nats.js checks `/^[-/=.\w]+$/`) only ASCII letters, digits and `-/=._`. A token keeps ASCII letters,
 * digits, `_` and `-`, and writes every other character as `=XX` per UTF-8 byte (upper-case hex): reversible, one
 * subject token, a valid KV key, and readable for ASCII names (`"shot.010"` is `"shot=2E010"`). `src/nats` keys
 * job records and names per-job subjects with it.
 */

const KEPT = /^[A-Za-z0-9_-]$/;
const TOKEN = /^(?:[A-Za-z0-9_-]|=[0-9A-F]{2})*$/;

/**
 * The NATS subject token and KV key of a job name.
 *
 * @example
 * ```ts
 * import { nameOfToken, nameToken } from "./_name_token.ts";
 *
 * const token = nameToken("test1.py_Würfel"); // "test1=2Epy_W=C3=BCrfel"
 * console.log(nameOfToken(token)); // "test1.py_Würfel"
 * ```
 */
export function nameToken(name: string): string {
  let token = "";
  for (const character of name) {
    if (KEPT.test(character)) {
      token += character;
      continue;
    }
    for (const byte of new TextEncoder().encode(character)) {
      token += `=${byte.toString(16).toUpperCase().padStart(2, "0")}`;
    }
  }
  return token;
}

/**
 * The job name a token stands for.
 *
 * @throws {RangeError} When `token` is not one `nameToken` makes.
 * @throws {TypeError} When its bytes are not UTF-8.
 */
export function nameOfToken(token: string): string {
  if (!TOKEN.test(token)) throw new RangeError(`'${token}' is not a job name token`);
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === "=") {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(token.charCodeAt(i));
    }
  }
  return new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes));
}
