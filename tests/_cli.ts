/** Running the bgproc CLI as a subprocess, as a user would, and tmux for the terminal tests. */

import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The CLI's entry point. */
export const cli: string = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));

/** What a CLI run printed and how it exited. */
export interface CliOutput {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** This process's environment without INIT_CWD (`deno task test` sets one; the CLI would resolve paths with it). */
export function withoutInitCwd(): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.INIT_CWD;
  return env;
}

/** Run `bgproc ARGS...` in `cwd` (default: this process's), with `NO_COLOR` and stdin from /dev/null. */
export async function bgprocIn(
  options: { cwd?: string; env?: Record<string, string> },
  ...args: string[]
): Promise<CliOutput> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-run", "--allow-env", "--allow-net", cli, ...args],
    stdin: "null",
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    clearEnv: true,
    env: { ...withoutInitCwd(), NO_COLOR: "1", ...options.env },
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

/** Run `bgproc ARGS...`. */
export function bgproc(...args: string[]): Promise<CliOutput> {
  return bgprocIn({}, ...args);
}

/** Where tmux is, when it is installed. */
export const TMUX = "/usr/bin/tmux";

/** Whether tmux is installed (the terminal tests are skipped without it). */
export const hasTmux: boolean = existsSync(TMUX);

/**
 * A private tmux server: `run(command, width)` runs `command` (a shell line) in a `width`-column, 24-row pane
 * until it prints `EXIT=<status>` and returns every screen seen (the last one with the whole scrollback);
 * `keys` sends keys to the pane while it runs. `close()` ends the server.
 */
export class Tmux implements AsyncDisposable {
  readonly #socket = `bgproc-test-${Deno.pid}-${Math.random().toString(36).slice(2, 8)}`;
  #sessions = 0;
  #started?: Promise<string>;

  /**
   * Run tmux with this server's socket (no configuration file); throws with tmux's own words when it fails. The
   * server is started once, with `exit-empty off`: otherwise killing the last session ends the server, and the next
   * `new-session` can reach the server while it exits ("server exited unexpectedly") and leave an empty screen.
   */
  async tmux(...args: string[]): Promise<string> {
    this.#started ??= this.#command(["start-server", ";", "set-option", "-g", "exit-empty", "off"]);
    await this.#started;
    return await this.#command(args);
  }

  async #command(args: string[]): Promise<string> {
    const command = new Deno.Command(TMUX, { args: ["-f", "/dev/null", "-L", this.#socket, ...args], stdin: "null" });
    const output = await command.output();
    const stderr = new TextDecoder().decode(output.stderr).trim();
    if (!output.success) throw new Error(`tmux ${args.join(" ")} failed (${output.code}): ${stderr}`);
    return new TextDecoder().decode(output.stdout);
  }

  /**
   * Run `command` at `width` columns; `during(session, screen)` is called on every screen until it exits.
   *
   * @returns The screens seen, the last one being the whole scrollback after `EXIT=`.
   */
  async run(
    command: string,
    width: number,
    during: (session: string, screen: string) => Promise<void> | void = () => {},
  ): Promise<string[]> {
    const session = `s${++this.#sessions}`;
    const line = `${command} 2>&1; echo EXIT=$?; sleep 120`;
    await this.tmux("new-session", "-d", "-s", session, "-x", String(width), "-y", "24", line);
    const screens: string[] = [];
    try {
      const deadline = Date.now() + 180_000;
      while (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 150));
        const screen = await this.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", session);
        screens.push(screen);
        if (/EXIT=\d+/.test(screen)) return screens;
        await during(session, screen);
      }
      throw new Error(`'${command}' did not end in 180 s:\n${screens.at(-1)}`);
    } finally {
      await this.tmux("kill-session", "-t", session).catch(() => {}); // Gone already: nothing to end.
    }
  }

  /** End the tmux server (when it was started). */
  async close(): Promise<void> {
    if (this.#started !== undefined) await this.#command(["kill-server"]).catch(() => {}); // Ended already.
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
