/** `bgproc keygen NAME`: a key pair for signed jobs and results over NATS (`NAME.key`, `NAME.pub`). */

// deno-lint-ignore-file no-console
import { generateKeyFiles } from "../nats/_signing.ts";
import type { Command } from "./_command.ts";
import { EnvironmentError, ExitCode, UsageError } from "./_errors.ts";
import { userPath } from "./_paths.ts";

/** The `keygen` command. */
export const keygenCommand: Command = {
  name: "keygen",
  summary: "make a key pair for signed jobs and results over NATS: NAME.key (private) and NAME.pub",
  usage: "bgproc keygen NAME",
  notes: `A host signs its jobs with its NAME.key (--signing-key) and workers that trust its NAME.pub (--trust) run
only jobs it signed; a worker signs its results with its own key and hosts that trust its .pub take only results it
signed. NAME.key is written with mode 0600; neither file is overwritten.`,
  flags: {},
  async run({ positionals }) {
    if (positionals.length !== 1) throw new UsageError("keygen takes one NAME (it writes NAME.key and NAME.pub)");
    const base = userPath(positionals[0]!);
    const { privateText, publicText, id } = await generateKeyFiles();
    try {
      await Deno.writeTextFile(`${base}.key`, privateText, { createNew: true, mode: 0o600 });
    } catch (error) {
      throw new EnvironmentError(`${base}.key cannot be written: ${(error as Error).message}`);
    }
    try {
      await Deno.writeTextFile(`${base}.pub`, publicText, { createNew: true });
    } catch (error) {
      await Deno.remove(`${base}.key`).catch(() => {});
      throw new EnvironmentError(`${base}.pub cannot be written: ${(error as Error).message}`);
    }
    console.log(`key ${id}: ${base}.key (private: keep it to this machine), ${base}.pub (public: give it out)`);
    return ExitCode.ok;
  },
};
