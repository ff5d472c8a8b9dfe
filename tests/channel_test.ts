/** The one channel: order, capacity and its overflow policy, close with and without a reason, abort, fan-out. */

import { deepStrictEqual, equal, rejects } from "node:assert/strict";
import { Broadcast, Channel } from "../src/channel.ts";

async function drain<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const values: T[] = [];
  for await (const value of iterable) values.push(value);
  return values;
}

Deno.test("channel: values in order, then done after close(); nothing is taken in once closed", async () => {
  const channel = new Channel<number>();
  channel.send(1);
  channel.send(2);
  setTimeout(() => {
    channel.send(3);
    channel.close();
    channel.send(4);
  }, 10);
  deepStrictEqual(await drain(channel), [1, 2, 3]);
});

Deno.test("channel: a full channel drops its oldest by default, or does what its overflow says", async () => {
  const oldest = new Channel<number>({ capacity: 2 });
  for (const value of [1, 2, 3, 4]) oldest.send(value);
  oldest.close();
  deepStrictEqual(await drain(oldest), [3, 4]);

  const failing = new Channel<number>({ capacity: 1, overflow: () => new RangeError("fell behind") });
  failing.send(1);
  failing.send(2);
  await rejects(failing.receive(), /fell behind/);
  equal(failing.closed, true);
});

Deno.test("channel: close(reason) reaches a waiting reader at once; an aborted signal ends reading", async () => {
  const channel = new Channel<number>();
  const waiting = channel.receive();
  channel.close(new Error("gone"));
  await rejects(waiting, /gone/);

  const quiet = new Channel<number>();
  const controller = new AbortController();
  const read = drain(quiet.iterate(controller.signal));
  quiet.send(7);
  setTimeout(() => controller.abort(), 10);
  deepStrictEqual(await read, [7]);
  equal(quiet.closed, true, "leaving the loop closes the channel");

  // Values waiting when the signal aborts are not read.
  const busy = new Channel<number>();
  const stop = new AbortController();
  const seen: number[] = [];
  busy.send(0);
  for await (const value of busy.iterate(stop.signal)) {
    seen.push(value);
    if (value === 1) {
      busy.send(2);
      busy.send(3);
      stop.abort();
    }
    if (seen.length === 1) busy.send(1);
  }
  deepStrictEqual(seen, [0, 1]);
});

Deno.test("broadcast: every open channel gets every value; a closed reader is forgotten; close() ends them all", async () => {
  const broadcast = new Broadcast<string>();
  const first = broadcast.subscribe();
  const second = broadcast.subscribe();
  broadcast.send("a");
  second.close();
  equal(broadcast.size, 1);
  broadcast.send("b");
  broadcast.close();
  deepStrictEqual(await drain(first), ["a", "b"]);
  deepStrictEqual(await drain(second), ["a"]);
  const late = broadcast.subscribe();
  deepStrictEqual(await drain(late), []);
});
