/**
 * The service's guards and answers: JSON errors `{ error, detail }`, the Host allow-list, the cross-site
 * checks, bearer tokens, and request bodies read with a byte limit and a nesting limit.
 */

/** A request the service refuses: the status and the JSON body it answers with. */
export class HttpError extends Error {
  readonly status: number;
  readonly detail: string;
  readonly headers: Record<string, string>;

  constructor(status: number, error: string, detail: string, headers: Record<string, string> = {}) {
    super(error);
    this.name = "HttpError";
    this.status = status;
    this.detail = detail;
    this.headers = headers;
  }
}

/** A JSON response. */
export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
  });
}

/** The JSON error response of `error`. */
export function errorResponse(error: HttpError): Response {
  return json({ error: error.message, detail: error.detail }, error.status, error.headers);
}

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/** Whether `hostname` (an address or a name) is this machine's loopback. */
export function isLoopback(hostname: string): boolean {
  return LOOPBACK_NAMES.has(hostname.toLowerCase()) || /^127\.\d+\.\d+\.\d+$/.test(hostname) ||
    hostname.toLowerCase().endsWith(".localhost");
}

/** The host name of a `Host` header, without its port. */
function hostName(host: string): string {
  const value = host.trim().toLowerCase();
  if (value.startsWith("[")) return value.slice(0, value.indexOf("]") + 1);
  const colon = value.lastIndexOf(":");
  return colon < 0 ? value : value.slice(0, colon);
}

/** Refuse a request whose `Host` is not allowed (DNS rebinding). */
export function checkHost(request: Request, allowedHosts: readonly string[] | "any"): void {
  if (allowedHosts === "any") return;
  const host = request.headers.get("host") ?? new URL(request.url).host;
  const name = hostName(host);
  if (!allowedHosts.some((allowed) => allowed.toLowerCase() === name)) {
    throw new HttpError(403, "host not allowed", `This service does not answer to the host '${name}'`);
  }
}

/** Refuse a request that changes something from another site: its `Origin` must be the service's own. */
export function checkSameOrigin(request: Request): void {
  if (request.method === "GET" || request.method === "HEAD") return;
  const site = request.headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin" && site !== "none") {
    throw new HttpError(403, "cross-site request", `Requests from another site are refused (${site})`);
  }
  const origin = request.headers.get("origin");
  if (origin === null) return; // Not a browser's cross-site request (curl, another service).
  const host = request.headers.get("host") ?? new URL(request.url).host;
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    originHost = "";
  }
  if (originHost.toLowerCase() !== host.toLowerCase()) {
    throw new HttpError(403, "cross-site request", "Requests from another origin are refused");
  }
}

/** Compare two strings in time that does not depend on where they differ. */
function sameSecret(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  let difference = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) difference |= (a[i] ?? 0) ^ b[i]!;
  return difference === 0;
}

/** The cookie the dashboard carries the token in (EventSource cannot send headers). */
export const TOKEN_COOKIE = "bgproc_token";

/** Whether the request carries the token, as `Authorization: Bearer` or the dashboard's cookie. */
export function hasToken(request: Request, token: string): boolean {
  const header = request.headers.get("authorization");
  if (header !== null && header.startsWith("Bearer ") && sameSecret(header.slice(7).trim(), token)) return true;
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === TOKEN_COOKIE && sameSecret(decodeURIComponent(value.join("=")), token)) return true;
  }
  return false;
}

/** The deepest nesting of arrays and objects in a JSON text, counted without parsing it. */
function nesting(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === 92) i++; // backslash: skip the escaped character
      else if (char === 34) inString = false;
    } else if (char === 34) inString = true;
    else if (char === 123 || char === 91) deepest = Math.max(deepest, ++depth);
    else if (char === 125 || char === 93) depth--;
  }
  return deepest;
}

/**
 * The request's JSON body: `application/json` only, read as a stream and refused with 413 as soon as it
 * passes `maxBytes` (never read whole first), 400 when it is not UTF-8, nested deeper than `maxDepth`, or
 * not JSON.
 */
export async function readJson(request: Request, maxBytes: number, maxDepth: number): Promise<unknown> {
  const type = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") {
    throw new HttpError(415, "unsupported media type", "Send the body as application/json");
  }
  const tooLarge = () =>
    new HttpError(413, "body too large", `The body may be at most ${maxBytes} bytes`, { connection: "close" });
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > maxBytes) {
    await request.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body !== null) {
    const reader = request.body.getReader();
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        if (size > maxBytes) {
          await reader.cancel().catch(() => {});
          throw tooLarge();
        }
        chunks.push(value);
      }
    } finally {
      reader.releaseLock();
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, "malformed JSON", "The body is not UTF-8");
  }
  if (nesting(text) > maxDepth) {
    throw new HttpError(400, "malformed JSON", `The body is nested more than ${maxDepth} levels deep`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, "malformed JSON", (error as Error).message);
  }
}

/** `decodeURIComponent`, with a bad escape as 400. */
export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, "bad URL", "The path has a malformed %-escape");
  }
}
