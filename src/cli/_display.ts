/**
 * Live job progress on stderr. On a terminal: a line per active job (a spinner while Blender starts, then a
 * bar with elapsed time and ETA) and an overall line with done/active/queued/failed counts, all cut to the
 * terminal's width and redrawn in place (cursor up, rewrite, erase to end of line: never `ESC[J`, so tmux's
 * scrollback stays clean); a ✔/✖ line per finished job and the jobs' output lines are printed above the bars.
 * Elsewhere: one line per state change and per 10 % of progress at most.
 */

import { JobDroppedError } from "../errors.ts";
import type { Job } from "../job_manager.ts";
import { color } from "./_color.ts";

/** Options of {@linkcode Display}. */
export interface DisplayOptions {
  /** Print each job's output lines, prefixed by its name. */
  readonly logs?: boolean;
  /** Append each job's output lines, prefixed by its name, to this file. */
  readonly logFile?: Deno.FsFile;
  /** Draw bars (default: whether stderr is a terminal). */
  readonly terminal?: boolean;
  /** Where output goes (default: stderr). */
  readonly write?: (text: string) => void;
  /** The terminal's size (default: stderr's). */
  readonly size?: () => { columns: number; rows: number };
}

interface Tracked {
  readonly job: Job;
  state: string;
  attempts: number;
  decile: number;
  startedAt: number | undefined;
  endedAt: number | undefined;
  failed: boolean;
  /** How the job ended, once its result settled. */
  outcome: { readonly ok: true; readonly ms: number } | { readonly ok: false; readonly error: unknown } | undefined;
}

const SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏";
const encoder = new TextEncoder();

/** `m:ss` (or `h:mm:ss`). */
function clock(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor(total / 60) % 60;
  const seconds = String(total % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

/** `1.4 s`, `2 min 3 s`. */
export function duration(ms: number): string {
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round(ms / 1000) % 60} s`;
}

/** `text` cut to `width` columns, with an ellipsis when cut. */
function cut(text: string, width: number): string {
  const chars = [...text];
  if (chars.length <= width) return text;
  return width <= 1 ? chars.slice(0, width).join("") : chars.slice(0, width - 1).join("") + "…";
}

function bar(fraction: number, width: number): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return color.cyan("█".repeat(filled)) + color.dim("░".repeat(width - filled));
}

/** Shows jobs' progress until they have all ended. */
export class Display {
  readonly #tracked: Tracked[];
  readonly #options: DisplayOptions;
  readonly #terminal: boolean;
  readonly #write: (text: string) => void;
  readonly #started = Date.now();
  #drawn = 0;
  #above: string[] = [];
  #frame = 0;
  #last = "";

  constructor(jobs: readonly Job[], options: DisplayOptions = {}) {
    this.#tracked = jobs.map((job) => {
      const tracked: Tracked = {
        job,
        state: "",
        attempts: 0,
        decile: 0,
        startedAt: undefined,
        endedAt: undefined,
        failed: false,
        outcome: undefined,
      };
      // Registered first, so the outcome is known before anyone else awaiting the result goes on.
      job.result().then(
        (result) => tracked.outcome = { ok: true, ms: result.durationMs },
        (error: unknown) => tracked.outcome = { ok: false, error },
      );
      return tracked;
    });
    this.#options = options;
    this.#terminal = options.terminal ?? Deno.stderr.isTerminal();
    this.#write = options.write ?? ((text) => Deno.stderr.writeSync(encoder.encode(text)));
  }

  /**
   * Follow the jobs to their end.
   *
   * @returns Settles once every job has ended and the last frame is drawn.
   */
  async follow(): Promise<void> {
    const followers = this.#tracked.map(async (tracked) => {
      const { job } = tracked;
      const logs = this.#options.logs === true || this.#options.logFile !== undefined
        ? (async () => {
          for await (const { line } of job.logs()) this.#log(job.name, line);
        })()
        : Promise.resolve();
      for await (const progress of job.progressUpdates()) {
        this.#update(tracked);
        this.#progress(tracked, progress);
      }
      await job.result().then(() => {}, () => {});
      await logs;
      this.#update(tracked);
    });
    const timer = setInterval(() => this.#tick(), this.#terminal ? 100 : 200);
    try {
      this.#tick();
      await Promise.all(followers);
    } finally {
      clearInterval(timer);
      this.#tick();
      if (this.#terminal) this.#finish();
    }
  }

  #log(name: string, line: string): void {
    const text = `${name} | ${line}`;
    if (this.#options.logFile !== undefined) this.#options.logFile.writeSync(encoder.encode(text + "\n"));
    if (this.#options.logs !== true) return;
    if (this.#terminal) this.#above.push(color.dim(`${name} |`) + ` ${line}`);
    else this.#write(text + "\n");
  }

  #tick(): void {
    for (const tracked of this.#tracked) this.#update(tracked);
    if (this.#terminal) this.#draw();
  }

  /** Notice a job's changes; print the lines they call for. */
  #update(tracked: Tracked): void {
    const { job } = tracked;
    const state = job.state;
    if (state === "ACTIVE" && tracked.startedAt === undefined) tracked.startedAt = Date.now();
    const ended = tracked.outcome !== undefined;
    if ((state === "COMPLETED" || state === "DROPPED") && !ended) return; // Its outcome comes in a moment.
    if (state === tracked.state && job.attempts === tracked.attempts && !(ended && tracked.endedAt === undefined)) {
      return;
    }
    const retry = job.attempts > tracked.attempts && tracked.attempts > 0 && !ended;
    tracked.state = state;
    tracked.attempts = job.attempts;
    if (ended) {
      if (tracked.endedAt !== undefined) return;
      tracked.endedAt = Date.now();
      this.#ended(tracked);
      return;
    }
    if (this.#terminal) {
      if (retry) this.#above.push(color.yellow(`↻ ${job.name}: attempt ${job.attempts} (the previous one failed)`));
    } else {
      this.#write(`${job.name}: ${state}${job.attempts > 1 ? ` (attempt ${job.attempts})` : ""}\n`);
    }
  }

  #progress(tracked: Tracked, progress: number): void {
    const decile = Math.floor(progress * 10);
    if (decile <= tracked.decile) return;
    tracked.decile = decile;
    if (!this.#terminal) this.#write(`${tracked.job.name}: ${decile * 10} %\n`);
  }

  #ended(tracked: Tracked): void {
    const { job } = tracked;
    const outcome = tracked.outcome!;
    const since = tracked.startedAt ?? tracked.endedAt!;
    const time = duration(outcome.ok ? outcome.ms : tracked.endedAt! - since);
    if (outcome.ok) {
      const line = `${job.name}: COMPLETED in ${time}`;
      if (this.#terminal) this.#above.push(`${color.green("✔")} ${this.#name(job.name, time)} ${color.dim(time)}`);
      else this.#write(line + "\n");
      return;
    }
    tracked.failed = true;
    const error = outcome.error;
    const why = error instanceof JobDroppedError
      ? `${error.reason}, ${error.attempts} attempt${error.attempts === 1 ? "" : "s"}`
      : String(error);
    if (this.#terminal) {
      const name = this.#name(job.name, `DROPPED (${why}) ${time}`);
      this.#above.push(`${color.red("✖")} ${name} ${color.red(`DROPPED (${why})`)} ${color.dim(time)}`);
    } else this.#write(`${job.name}: DROPPED (${why}) after ${time}\n`);
  }

  /** A job's name, cut so that a ✔/✖ line with `after` fits the terminal. */
  #name(name: string, after: string): string {
    return cut(name, Math.max(8, this.#size().columns - 4 - after.length));
  }

  #size(): { columns: number; rows: number } {
    try {
      return this.#options.size?.() ?? Deno.consoleSize();
    } catch {
      return { columns: 80, rows: 24 }; // Not a console after all.
    }
  }

  /** The bars, cut to the terminal. */
  #lines(columns: number, rows: number): string[] {
    const width = Math.max(20, columns) - 1; // Never the last column: some terminals wrap there.
    const now = Date.now();
    const active = this.#tracked.filter((t) => t.job.state === "ACTIVE");
    const nameWidth = Math.min(Math.max(...this.#tracked.map((t) => [...t.job.name].length), 4), Math.floor(width / 4));
    const lines: string[] = [];
    const room = Math.max(1, rows - 2);
    for (const tracked of active.slice(0, active.length > room ? room - 1 : room)) {
      const { job } = tracked;
      const name = cut(job.name, nameWidth).padEnd(nameWidth);
      const elapsed = now - (tracked.startedAt ?? now);
      if (job.progress === 0) {
        const spinner = SPINNER[this.#frame % SPINNER.length]!;
        const text = cut(`${name}  starting Blender…  ${clock(elapsed)}`, width - 2);
        lines.push(`${color.cyan(spinner)} ${text}`);
        continue;
      }
      const eta = job.progress > 0.01 && job.progress < 1
        ? `  ETA ${clock(elapsed * (1 - job.progress) / job.progress)}`
        : "";
      const tail = `  ${(job.progress * 100).toFixed(0).padStart(3)} %  ${clock(elapsed)}`;
      const barWidth = width - 2 - nameWidth - 2 - tail.length - eta.length;
      if (barWidth >= 5) lines.push(`  ${name}  ${bar(job.progress, barWidth)}${tail}${eta}`);
      else lines.push(`  ${cut(`${name}${tail}`, width - 2)}`);
    }
    if (active.length > room) lines.push(color.dim(`  … and ${active.length - room + 1} more active`));
    if (this.#tracked.length > 1) {
      const done = this.#tracked.filter((t) => t.endedAt !== undefined).length;
      const failed = this.#tracked.filter((t) => t.failed).length;
      const queued = this.#tracked.filter((t) => t.job.state === "QUEUED").length;
      const overall = this.#tracked.reduce((sum, t) => sum + (t.job.state === "COMPLETED" ? 1 : t.job.progress), 0) /
        this.#tracked.length;
      const elapsed = now - this.#started;
      const eta = overall > 0.01 && overall < 1 ? `  ETA ${clock(elapsed * (1 - overall) / overall)}` : "";
      const counts = `  ${done}/${this.#tracked.length} done · ${active.length} active · ${queued} queued`;
      const fail = failed > 0 ? ` · ${failed} failed` : "";
      const tail = `${counts}${fail}  ${clock(elapsed)}${eta}`;
      const barWidth = Math.min(30, width - 2 - tail.length);
      if (barWidth >= 5) {
        const plain = `${counts}${fail}`;
        lines.push(`  ${bar(overall, barWidth)}${plain.replace(fail, color.red(fail))}  ${clock(elapsed)}${eta}`);
      } else lines.push(`  ${cut(tail.trim(), width - 2)}`);
    }
    return lines;
  }

  #draw(): void {
    const { columns, rows } = this.#size();
    this.#frame++;
    const lines = this.#lines(columns, rows);
    const frame = lines.join("\n");
    if (this.#above.length === 0 && frame === this.#last) return;
    this.#last = frame;
    let out = this.#drawn > 0 ? `\x1b[${this.#drawn}F` : "\r";
    for (const line of [...this.#above, ...lines]) out += `${line}\x1b[K\n`;
    const leftover = this.#drawn - this.#above.length - lines.length;
    if (leftover > 0) out += "\x1b[2K\n".repeat(leftover) + `\x1b[${leftover}F`;
    this.#above = [];
    this.#drawn = lines.length;
    this.#write(out);
  }

  /** Remove the bars, leaving the ✔/✖ lines and one summary line. */
  #finish(): void {
    let out = this.#drawn > 0 ? `\x1b[${this.#drawn}F` : "\r";
    for (const line of this.#above) out += `${line}\x1b[K\n`;
    const leftover = this.#drawn - this.#above.length;
    if (leftover > 0) out += "\x1b[2K\n".repeat(leftover) + `\x1b[${leftover}F`;
    this.#above = [];
    this.#drawn = 0;
    if (this.#tracked.length > 1) {
      const failed = this.#tracked.filter((t) => t.failed).length;
      const completed = this.#tracked.length - failed;
      out += `${completed} completed, ${failed > 0 ? color.red(`${failed} dropped`) : "0 dropped"} in ${
        duration(Date.now() - this.#started)
      }\x1b[K\n`;
    }
    this.#write(out);
  }
}
