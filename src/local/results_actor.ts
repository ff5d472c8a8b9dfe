/**
 * The Results actor: owns the files each completed job's result left on this host (its data-block library, and
 * its outputs when they are kept in the work root) until the job is forgotten, then removes them. The result
 * itself (`python_data`, the manifest) is held once, by the job the facade hands out.
 */

import { type ActorRef, spawnActor, unreachable } from "../_actor.ts";

/** The files a completed job left here. */
export interface ResultFiles {
  /** The job's data-block library, or `null`. */
  readonly library: string | null;
  /** The results folder holding the outputs (no `outputDir` was given), or `null`. */
  readonly outputsFolder: string | null;
}

/** Messages of the Results actor. */
export type ResultsMessage =
  | { readonly type: "store"; readonly name: string } & ResultFiles
  | { readonly type: "remove"; readonly name: string };

/** Start an empty Results actor; `onCrash` hears if it fails. */
export function startResults(onCrash: (error: unknown) => void): ActorRef<ResultsMessage> {
  const results = new Map<string, ResultFiles>();
  return spawnActor<ResultsMessage>("results", {
    async receive(message) {
      switch (message.type) {
        case "store":
          results.set(message.name, { library: message.library, outputsFolder: message.outputsFolder });
          return;
        case "remove": {
          const stored = results.get(message.name);
          results.delete(message.name);
          if (stored?.library) await Deno.remove(stored.library).catch(() => {});
          if (stored?.outputsFolder) await Deno.remove(stored.outputsFolder, { recursive: true }).catch(() => {});
          return;
        }
        default:
          unreachable(message);
      }
    },
  }, onCrash);
}
