/** Runs a program that imports this checkout over HTTP, as a user importing from JSR would. */

import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/** What the program printed, and its exit code. */
export interface HttpImportRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Serve the checkout on a loopback port, write `source(host)` to a temporary
 * `main.ts` (its cwd) and run it with `deno run --no-config` and the given
 * extra permissions; stop the server and remove the folder on every path.
 */
export async function runImportedOverHttp(
  source: (host: string, dir: string) => string,
  options: { allowNet?: boolean } = {},
): Promise<HttpImportRun> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = normalize(join(root, decodeURIComponent(new URL(request.url).pathname)));
    if (!path.startsWith(root)) return new Response("no", { status: 403 });
    try {
      const type = extname(path) === ".ts" ? "application/typescript" : "text/plain";
      return new Response(await Deno.readFile(path), { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  const dir = await Deno.makeTempDir();
  try {
    const host = `127.0.0.1:${server.addr.port}`;
    const main = join(dir, "main.ts");
    await Deno.writeTextFile(main, source(host, dir));
    const permissions = ["--allow-read", "--allow-write", "--allow-run", "--allow-env"];
    if (options.allowNet) permissions.push(`--allow-net=${host}`);
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--no-config", "--no-lock", "--reload", `--allow-import=${host}`, ...permissions, main],
      cwd: dir,
      stdin: "null",
    }).output();
    const decoder = new TextDecoder();
    return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}
