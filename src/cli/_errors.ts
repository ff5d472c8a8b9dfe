/** The CLI's exit statuses and the errors that map to them. */

/** The exit statuses `bgproc` documents. */
export const ExitCode = {
  /** Every job completed (or the command did what it was asked). */
  ok: 0,
  /** At least one job was dropped (its report went to stderr). */
  dropped: 1,
  /** Bad usage or a bad input file: nothing was started. */
  usage: 2,
  /** No Blender was found, or the service could not listen: nothing was started. */
  environment: 3,
  /** Interrupted (Ctrl-C): running jobs were killed. */
  interrupted: 130,
} as const;

/** A bad command line or input file: printed as is (no stack), exit status 2. */
export class UsageError extends Error {
  /** Extra lines printed after the message (a source line and its caret). */
  readonly context: string;

  constructor(message: string, context = "") {
    super(message);
    this.name = "UsageError";
    this.context = context;
  }
}

/** Something outside the command line is missing or busy (Blender, a port): exit status 3. */
export class EnvironmentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EnvironmentError";
  }
}
