/** The actor kernel and the output helpers, without Blender. */

import { deepStrictEqual, equal, rejects } from "node:assert/strict";
import { type Reply, spawnActor } from "../src/_actor.ts";
import { lineSplitter, LineTail, shellQuote } from "../src/local/job/lines.ts";
import { backoffMs, jittered } from "../src/local/policy.ts";

type CounterMessage =
  | { type: "add"; n: number }
  | { type: "get"; reply: Reply<number> }
  | { type: "boom" };

function counter(onCrash: (error: unknown) => void = () => {}) {
  let total = 0;
  return spawnActor<CounterMessage>("counter", {
    async receive(message) {
      switch (message.type) {
        case "add":
          await Promise.resolve();
          total += message.n;
          return;
        case "get":
          message.reply.resolve(total);
          return;
        case "boom":
          throw new Error("boom");
      }
    },
  }, onCrash);
}

Deno.test("actor: messages are handled one at a time, in order; ask gets a typed reply", async () => {
  const actor = counter();
  for (let n = 1; n <= 100; n++) actor.tell({ type: "add", n });
  equal(await actor.ask<number>((reply) => ({ type: "get", reply })), 5050);
  await actor.stop();
  await rejects(actor.ask<number>((reply) => ({ type: "get", reply })), /has stopped/);
});

Deno.test("actor: a crash stops it, rejects pending asks and tells the parent", async () => {
  const crashes: unknown[] = [];
  const actor = counter((error) => crashes.push(error));
  actor.tell({ type: "boom" });
  const pending = actor.ask<number>((reply) => ({ type: "get", reply }));
  await rejects(pending, /has stopped/);
  equal(crashes.length, 1);
});

Deno.test("actor: ask honours an aborted signal", async () => {
  const actor = counter();
  await rejects(
    actor.ask<number>((reply) => ({ type: "get", reply }), { signal: AbortSignal.abort(new Error("gave up")) }),
    /gave up/,
  );
  await actor.stop();
});

Deno.test("lineSplitter splits chunks on \\n and \\r\\n and keeps a last line without newline", async () => {
  const chunks = ["a\nb", "c\r\nd", "", "\n", "tail"];
  const lines = await Array.fromAsync(ReadableStream.from(chunks).pipeThrough(lineSplitter()));
  deepStrictEqual(lines, ["a", "bc", "d", "tail"]);
});

Deno.test("LineTail keeps the last lines within its limit", () => {
  const tail = new LineTail(11);
  for (const line of ["one", "two", "three", "four"]) tail.push(line);
  equal(tail.text(), "three\nfour\n");
  equal(tail.dropped, 2);
  equal(tail.last(1), "four\n");
  tail.push("x".repeat(25));
  equal(tail.text(), "x".repeat(10) + "\n");
});

Deno.test("shellQuote quotes what a shell would split or expand", () => {
  equal(
    shellQuote(["blender", "-b", "a b", "it's", "$HOME", "/x/y.py"]),
    `blender -b 'a b' 'it'"'"'s' '$HOME' /x/y.py`,
  );
});

Deno.test("lineSplitter cuts a line longer than its limit into pieces, in linear time", async () => {
  const chunks = Array.from({ length: 2_000 }, () => "x".repeat(1_000)).concat(["\ny\n"]);
  const lines = await Array.fromAsync(ReadableStream.from(chunks).pipeThrough(lineSplitter(300_000)));
  deepStrictEqual(lines.map((line) => line.length), [300_000, 300_000, 300_000, 300_000, 300_000, 300_000, 200_000, 1]);
});

Deno.test("policy: the backoff grows by its factor up to its cap; jitter stays within its spread", () => {
  const policy = { initialDelayMs: 250, factor: 2, maxDelayMs: 1000 };
  deepStrictEqual([1, 2, 3, 4].map((attempt) => backoffMs(policy, attempt)), [250, 500, 1000, 1000]);
  equal(jittered(1000, 0.2, () => 0), 800);
  equal(jittered(1000, 0.2, () => 0.5), 1000);
  equal(jittered(1000, 0.2, () => 0.999999), 1200);
  for (let i = 0; i < 100; i++) {
    const value = jittered(500);
    equal(value >= 400 && value <= 600, true, String(value));
  }
});
