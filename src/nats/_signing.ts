/**
 * Signed jobs and results (Ed25519 through WebCrypto). A job is code: a worker that trusts host keys runs a job only
 * when its record carries a valid signature by one of them over what decides what runs (its name, its submission id
 * and its spec: the script's, the .blend file's and every input's SHA-256, the passed data, the arguments and the run
 * options). A host that trusts worker keys takes a job's end (its result, with its outputs' SHA-256s, or its report)
 * only when signed by one of them over the job's name, submission id, attempt, state, result and report. Keys are
 * files: `bgproc keygen NAME` writes `NAME.key` (private, mode 0600) and `NAME.pub`.
 */

import { basename } from "node:path";
import type { JobRecord, Signature } from "./_protocol.ts";
import type { NatsSigningOptions } from "../api/options.ts";

/** A private key to sign with, and its id. */
export interface SigningKey {
  readonly id: string;
  readonly key: CryptoKey;
}

/** The public keys one side trusts, by id. */
export type TrustedKeys = ReadonlyMap<string, CryptoKey>;

const PRIVATE = "bgproc-ed25519-private";
const PUBLIC = "bgproc-ed25519-public";
const ED25519 = { name: "Ed25519" } as const;

/** A new key pair as the texts of its two files (`.key`, `.pub`). */
export async function generateKeyFiles(): Promise<{ privateText: string; publicText: string; id: string }> {
  const pair = await crypto.subtle.generateKey(ED25519, true, ["sign", "verify"]) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  return {
    privateText: `${PRIVATE} ${toBase64(pkcs8)} ${toBase64(raw)}\n`,
    publicText: `${PUBLIC} ${toBase64(raw)}\n`,
    id: await keyId(raw),
  };
}

/** Read a private key file (`bgproc keygen`'s `.key`). */
export async function loadSigningKey(path: string): Promise<SigningKey> {
  const [kind, pkcs8, raw] = (await readKeyFile(path)).split(" ");
  if (kind !== PRIVATE || pkcs8 === undefined || raw === undefined) {
    throw new TypeError(`${path} is not a bgproc private key (bgproc keygen writes one)`);
  }
  const key = await crypto.subtle.importKey("pkcs8", fromBase64(pkcs8), ED25519, false, ["sign"]);
  return { id: await keyId(fromBase64(raw)), key };
}

/** Read public key files (`bgproc keygen`'s `.pub`). */
export async function loadTrustedKeys(paths: readonly string[]): Promise<TrustedKeys> {
  const keys = new Map<string, CryptoKey>();
  for (const path of paths) {
    const [kind, raw] = (await readKeyFile(path)).split(" ");
    if (kind !== PUBLIC || raw === undefined) {
      throw new TypeError(`${path} is not a bgproc public key (bgproc keygen writes one)`);
    }
    const bytes = fromBase64(raw);
    keys.set(await keyId(bytes), await crypto.subtle.importKey("raw", bytes, ED25519, false, ["verify"]));
  }
  return keys;
}

/** What a host signs of a job: what decides what runs, bound to this submission. */
export function signedJob(record: Pick<JobRecord, "name" | "id" | "spec">): unknown {
  return { name: record.name, id: record.id, spec: record.spec };
}

/** What a worker signs of a completed job: its result, bound to the job, the submission, the attempt and itself. */
export function signedEnd(record: Pick<JobRecord, "name" | "id" | "attempts" | "worker" | "result">): unknown {
  return { name: record.name, id: record.id, attempts: record.attempts, worker: record.worker, result: record.result };
}

/** What a worker signs of a progress value: the value bound to the job, the submission, the attempt and itself. */
export function signedProgress(
  progress: { name: string; id: string; attempt: number; value: number; worker: string },
): unknown {
  return {
    progress: progress.value,
    name: progress.name,
    id: progress.id,
    attempt: progress.attempt,
    worker: progress.worker,
  };
}

/** The loaded keys of one side. */
export interface Signing {
  readonly key: SigningKey | undefined;
  readonly trusted: TrustedKeys | undefined;
}

/** Load `files` (none given: no signing, nothing required). */
export async function loadSigning(files: NatsSigningOptions | undefined): Promise<Signing> {
  return {
    key: files?.key === undefined ? undefined : await loadSigningKey(files.key),
    trusted: files?.trust === undefined || files.trust.length === 0 ? undefined : await loadTrustedKeys(files.trust),
  };
}

/** Sign `value` (as canonical JSON). */
export async function sign(key: SigningKey, value: unknown): Promise<Signature> {
  const sig = await crypto.subtle.sign(ED25519, key.key, canonicalBytes(value));
  return { key: key.id, sig: toBase64(new Uint8Array(sig)) };
}

/** Why `signature` is not a valid signature of `value` by one of `trusted`, or `null` when it is. */
export async function whyUntrusted(trusted: TrustedKeys, value: unknown, signature: unknown): Promise<string | null> {
  if (typeof signature !== "object" || signature === null) return "it is not signed";
  const { key, sig } = signature as Record<string, unknown>;
  if (typeof key !== "string" || typeof sig !== "string") return "its signature is malformed";
  const publicKey = trusted.get(key);
  if (publicKey === undefined) return `it is signed by key ${key}, which is not trusted here`;
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = fromBase64(sig);
  } catch {
    return "its signature is malformed";
  }
  const valid = await crypto.subtle.verify(ED25519, publicKey, bytes, canonicalBytes(value)).catch(() => false);
  return valid ? null : `its signature by key ${key} does not match its content`;
}

/** JSON with every object's keys sorted, so both sides sign the same bytes whatever order a value was built in. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) => {
    if (typeof inner !== "object" || inner === null || Array.isArray(inner)) return inner;
    return Object.fromEntries(Object.entries(inner as Record<string, unknown>).sort(([a], [b]) => a < b ? -1 : 1));
  });
}

function canonicalBytes(value: unknown): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(canonicalJson(value));
}

async function keyId(raw: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", raw));
  return toBase64(digest).slice(0, 16).replaceAll("+", "-").replaceAll("/", "_");
}

async function readKeyFile(path: string): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch (error) {
    throw new TypeError(`the key file ${basename(path)} cannot be read: ${(error as Error).message}`, { cause: error });
  }
}

function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
