/**
 * The CLI speaks in the words the user typed: `--blend`, not the library's `blendFile`; `--blender PATH`, not
 * "the `blender` option". Errors from the library are re-worded here, once, for every command.
 */

import { BlenderNotFoundError, InvalidJobError } from "../errors.ts";

/** The library's option names as `run`'s flags call them. */
export const FLAG_WORDS: Readonly<Record<string, string>> = {
  script: "the script",
  blendFile: "--blend",
  passedData: "passed_data",
  timeout: "--timeout",
  name: "--name",
  outputDir: "--output",
  logFile: "--log-file",
  args: "ARGS",
  addons: "--addon",
  passedDataBlocks: "--blocks",
};

/** The library's option names as a batch file's fields call them. */
export const BATCH_WORDS: Readonly<Record<string, string>> = {
  script: "script",
  blendFile: "blend",
  passedData: "data",
  timeout: "timeout",
  name: "name",
  args: "args",
  addons: "addons",
  factoryStartup: "factoryStartup",
};

/**
 * `error`'s first line in `words`: `'blendFile' /x.blend does not exist` becomes `--blend /x.blend does not
 * exist`; "Cannot add job as" goes (the user added no job by that name).
 *
 * @param error An error of the library.
 * @param words The option names to use (`FLAG_WORDS` or `BATCH_WORDS`).
 * @returns The message to print, or `undefined` when `error` is not the library's.
 */
export function inUserWords(error: unknown, words: Readonly<Record<string, string>>): string | undefined {
  if (error instanceof BlenderNotFoundError) {
    return error.message.split("\n")[0]!
      .replace("the 'blender' option (", "--blender (")
      .replace("the `blender` option", "--blender PATH");
  }
  if (!(error instanceof InvalidJobError)) return undefined;
  const message = error.message.split("\n")[0]!.replace(/^Cannot add job as /, "");
  const root = /^[A-Za-z]+/.exec(error.field)?.[0] ?? "";
  const word = words[root];
  if (word === undefined) return message;
  const rest = error.field.slice(root.length);
  // `--blocks objects`, but `passed_data.a[1]` and a batch entry's `data.a`.
  const said = word.startsWith("--") && rest.startsWith(".") ? `${word} ${rest.slice(1)}` : `${word}${rest}`;
  return message.replaceAll(`'${error.field}'`, said);
}
