/** What a `bgproc` command is: its name, help, flags and what it does. */

import type { FlagSpecs, Parsed } from "./_args.ts";

/** One `bgproc` command. */
export interface Command {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** The usage line(s), without the options. */
  readonly usage: string;
  /** Text after the options (file formats, exit statuses). */
  readonly notes?: string;
  readonly flags: FlagSpecs;
  /** Run it; resolves to the exit status. */
  run(parsed: Parsed): Promise<number>;
}
