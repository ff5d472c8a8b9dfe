/** The Results actor: holds each completed job's `python_data` until the job is forgotten. */

import { type ActorRef, type Reply, spawnActor, unreachable } from "./_actor.ts";
import type { JsonObject } from "./types.ts";

/** Messages of the Results actor. */
export type ResultsMessage =
  | { readonly type: "store"; readonly name: string; readonly pythonData: JsonObject }
  | { readonly type: "getPythonData"; readonly name: string; readonly reply: Reply<JsonObject | undefined> }
  | { readonly type: "remove"; readonly name: string }
  | { readonly type: "clear" };

/** Start an empty Results actor. */
export function startResults(): ActorRef<ResultsMessage> {
  const pythonData = new Map<string, JsonObject>();
  return spawnActor<ResultsMessage>("results", {
    receive(message) {
      switch (message.type) {
        case "store":
          pythonData.set(message.name, message.pythonData);
          return;
        case "getPythonData":
          message.reply.resolve(pythonData.get(message.name));
          return;
        case "remove":
          pythonData.delete(message.name);
          return;
        case "clear":
          pythonData.clear();
          return;
        default:
          unreachable(message);
      }
    },
  });
}
