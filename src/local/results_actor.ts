/**
 * The Results actor: holds each completed job's `python_data` and data-block
 * manifest and outputs until the job is forgotten, when it also removes the
 * job's data-block library and the outputs kept in the work root.
 */

import { type ActorRef, type Reply, spawnActor, unreachable } from "../_actor.ts";
import type { JobOutput } from "./job/outputs.ts";
import type { DataBlocks, JsonObject } from "../types.ts";

/** What a completed job handed back. */
export interface StoredResult {
  readonly pythonData: JsonObject;
  readonly dataBlocks: DataBlocks | null;
  readonly outputs: readonly JobOutput[];
  /** The results folder holding the outputs (no `outputDir` was given), removed with the result; else `null`. */
  readonly outputsFolder: string | null;
}

/** Messages of the Results actor. */
export type ResultsMessage =
  | { readonly type: "store"; readonly name: string } & StoredResult
  | { readonly type: "get"; readonly name: string; readonly reply: Reply<StoredResult | undefined> }
  | { readonly type: "remove"; readonly name: string };

/** Start an empty Results actor; `onCrash` hears if it fails (later asks then reject with the cause). */
export function startResults(onCrash: (error: unknown) => void): ActorRef<ResultsMessage> {
  const results = new Map<string, StoredResult>();
  return spawnActor<ResultsMessage>("results", {
    async receive(message) {
      switch (message.type) {
        case "store":
          results.set(message.name, {
            pythonData: message.pythonData,
            dataBlocks: message.dataBlocks,
            outputs: message.outputs,
            outputsFolder: message.outputsFolder,
          });
          return;
        case "get":
          message.reply.resolve(results.get(message.name));
          return;
        case "remove": {
          const stored = results.get(message.name);
          results.delete(message.name);
          if (stored?.dataBlocks) await Deno.remove(stored.dataBlocks.path).catch(() => {});
          if (stored?.outputsFolder) await Deno.remove(stored.outputsFolder, { recursive: true }).catch(() => {});
          return;
        }
        default:
          unreachable(message);
      }
    },
  }, onCrash);
}
