/**
 * Live job progress on stderr. On a terminal: a line per active job (a spinner while Blender starts, then a
 * bar with elapsed time and ETA) and an overall line with done/active/queued/failed counts, all cut to the
 * terminal's width and redrawn in place (cursor up, rewrite, erase to end of line: never `ESC[J`, so tmux's
 * scrollback stays clean); a ✔/✖ line per finished job and the jobs' output lines are printed above the bars.
 * Elsewhere: one line per state change and per 10 % of progress at most.
 */

import { JobDroppedError } from "../errors.ts";
import type { Job } from "../api/job.ts";
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
  /** Whether the user interrupted (Ctrl-C): jobs killed then are counted as killed or not started, not failed. */
  readonly interrupted?: () => boolean;
}

/** How a job ended, as the display counted it. */
export type Ending = "completed" | "dropped" | "killed" | "not started";

interface Tracked {
  readonly job: Job;
  state: string;
  attempts: number;
  decile: number;
  startedAt: number | undefined;
  endedAt: number | undefined;
  failed: boolean;
  /** How the job ended, once the display has seen it end. */
  ending: Ending | undefined;
  /** How long it ran, as its ✔/✖ line says. */
  ms: number | undefined;
  /** How the job ended, once its result settled. */
  outcome: { readonly ok: true; readonly ms: number } | { readonly ok: false; readonly error: unknown } | undefined;
}

const SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏";
/** The narrowest bar worth drawing; names and counts give way to it. */
const BAR_MIN = 10;
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

/** A job to show; `note` (e.g. a render's `12/48 frames`) goes beside its percentage. */
export type ShownJob = Job & { readonly note?: string };

function noteOf(job: Job): string {
  return (job as ShownJob).note ?? "";
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
        ending: undefined,
        ms: undefined,
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
      else if (this.#options.interrupted?.() === true) this.#write(`${this.#summary()}\n`);
    }
  }

  /**
   * How each job ended and how long it ran, as its ✔/✖ line said (`undefined`: it never ran).
   *
   * @param job One of the jobs shown.
   * @returns Its ending and time, once `follow()` has settled.
   */
  ending(job: Job): { ending: Ending | undefined; ms: number | undefined } {
    const tracked = this.#tracked.find((tracked) => tracked.job === job);
    return { ending: tracked?.ending, ms: tracked?.ending === "not started" ? undefined : tracked?.ms };
  }

  /** "5 completed, 1 dropped in 12.3 s", or after Ctrl-C "interrupted: 2 running jobs killed, 4 not started". */
  #summary(): string {
    const count = (ending: Ending) => this.#tracked.filter((t) => t.ending === ending).length;
    const [completed, dropped, killed] = [count("completed"), count("dropped"), count("killed")];
    const waiting = this.#tracked.filter((t) => t.ending === "not started" || t.ending === undefined).length;
    if (this.#options.interrupted?.() === true) {
      const parts = [
        ...(completed > 0 ? [`${completed} completed`] : []),
        ...(dropped > 0 ? [color.red(`${dropped} dropped`)] : []),
        `${killed} running job${killed === 1 ? "" : "s"} killed`,
        ...(waiting > 0 ? [`${waiting} not started`] : []),
      ];
      return `${color.yellow("interrupted:")} ${parts.join(", ")}`;
    }
    const failed = dropped > 0 ? color.red(`${dropped} dropped`) : "0 dropped";
    return `${completed} completed, ${failed} in ${duration(Date.now() - this.#started)}`;
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
    if (tracked.endedAt !== undefined) return; // Its end line is out: no "100 %" after "COMPLETED".
    const decile = Math.floor(progress * 10);
    if (decile <= tracked.decile) return;
    tracked.decile = decile;
    const note = noteOf(tracked.job);
    if (!this.#terminal) this.#write(`${tracked.job.name}: ${decile * 10} %${note === "" ? "" : ` (${note})`}\n`);
  }

  #ended(tracked: Tracked): void {
    const { job } = tracked;
    const outcome = tracked.outcome!;
    const since = tracked.startedAt ?? tracked.endedAt!;
    tracked.ms = outcome.ok ? outcome.ms : tracked.endedAt! - since;
    const time = duration(tracked.ms);
    if (outcome.ok) {
      tracked.ending = "completed";
      const line = `${job.name}: COMPLETED in ${time}`;
      if (this.#terminal) this.#above.push(`${color.green("✔")} ${this.#name(job.name, time)} ${color.dim(time)}`);
      else this.#write(line + "\n");
      return;
    }
    const error = outcome.error;
    if (this.#options.interrupted?.() === true && error instanceof JobDroppedError && error.reason === "killed") {
      // Ctrl-C: a job that never started was not dropped, it was not run; one that ran was killed.
      tracked.ending = error.attempts === 0 ? "not started" : "killed";
      if (tracked.ending === "not started") return;
    } else {
      tracked.ending = "dropped";
      tracked.failed = true;
    }
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
    // The name gets what a bar of BAR_MIN and the widest tail ("  100 %  0:00  ETA 0:00", 23) leave, up to 40.
    const notes = Math.max(0, ...this.#tracked.map((t) => noteOf(t.job) === "" ? 0 : noteOf(t.job).length + 2));
    const room = width - 4 - 23 - notes - BAR_MIN;
    const longest = Math.max(...this.#tracked.map((t) => [...t.job.name].length), 4);
    const nameWidth = Math.min(longest, Math.max(Math.floor(width / 4), Math.min(room, 40)));
    const lines: string[] = [];
    const shown = Math.max(1, rows - 2);
    for (const tracked of active.slice(0, active.length > shown ? shown - 1 : shown)) {
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
      const note = noteOf(job);
      const tail = `  ${(job.progress * 100).toFixed(0).padStart(3)} %${note === "" ? "" : `  ${note}`}  ${
        clock(elapsed)
      }`;
      const barWidth = width - 2 - nameWidth - 2 - tail.length - eta.length;
      if (barWidth >= 5) lines.push(`  ${name}  ${bar(job.progress, barWidth)}${tail}${eta}`);
      else lines.push(`  ${cut(`${name}${tail}`, width - 2)}`);
    }
    if (active.length > shown) lines.push(color.dim(`  … and ${active.length - shown + 1} more active`));
    if (this.#tracked.length > 1) {
      const done = this.#tracked.filter((t) => t.endedAt !== undefined).length;
      const failed = this.#tracked.filter((t) => t.failed).length;
      const queued = this.#tracked.filter((t) => t.job.state === "QUEUED").length;
      const overall = this.#tracked.reduce((sum, t) => sum + (t.job.state === "COMPLETED" ? 1 : t.job.progress), 0) /
        this.#tracked.length;
      const elapsed = now - this.#started;
      const eta = overall > 0.01 && overall < 1 ? `  ETA ${clock(elapsed * (1 - overall) / overall)}` : "";
      const fail = failed > 0 ? ` · ${failed} failed` : "";
      const total = this.#tracked.length;
      // Narrower terminals drop the ETA, then the active/queued counts, so the bar and "failed" stay.
      const tails = [
        [`  ${done}/${total} done · ${active.length} active · ${queued} queued`, `  ${clock(elapsed)}${eta}`],
        [`  ${done}/${total} done · ${active.length} active · ${queued} queued`, `  ${clock(elapsed)}`],
        [`  ${done}/${total} done · ${active.length} active`, `  ${clock(elapsed)}`],
        [`  ${done}/${total} done`, `  ${clock(elapsed)}`],
      ] as const;
      const [counts, time] = tails.find(([counts, time]) => width - 2 - `${counts}${fail}${time}`.length >= BAR_MIN) ??
        tails[3];
      const barWidth = Math.min(30, width - 2 - `${counts}${fail}${time}`.length);
      if (barWidth >= 5) lines.push(`  ${bar(overall, barWidth)}${counts}${fail === "" ? "" : color.red(fail)}${time}`);
      else lines.push(`  ${cut(`${counts}${fail}${time}`.trim(), width - 2)}`);
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
    if (this.#tracked.length > 1 || this.#options.interrupted?.() === true) out += `${this.#summary()}\x1b[K\n`;
    this.#write(out);
  }
}
