/** Runs units `jobs` at a time, longest expected first, and reports each as it ends. */

/** What the scheduler needs of an item: how long it is expected to take, and what it waits for, if anything. */
export interface Schedulable {
  readonly seconds: number;
  /** The item is not started before this settles (a Blender still being built); it is started when it rejects. */
  readonly ready?: Promise<void>;
}

/**
 * Runs every item through `run`, at most `jobs` at once, longest (`seconds`) first among those ready, so that the
 * short ones fill the gaps at the end; `onEnd` hears each result as it comes. Resolves with the results in the order
 * they ended.
 */
export async function schedule<T extends Schedulable, R>(
  items: readonly T[],
  jobs: number,
  run: (item: T) => Promise<R>,
  onEnd: (result: R) => void,
): Promise<R[]> {
  const waiting = [...items].sort((a, b) => b.seconds - a.seconds);
  const settled = new Set<Promise<void>>();
  for (const ready of new Set(items.map((item) => item.ready))) {
    if (ready !== undefined) ready.then(() => settled.add(ready), () => settled.add(ready));
  }
  const isReady = (item: T) => item.ready === undefined || settled.has(item.ready);
  const next = async (): Promise<T | undefined> => {
    while (waiting.length > 0) {
      const index = waiting.findIndex(isReady);
      if (index >= 0) return waiting.splice(index, 1)[0];
      // Nothing ready: wait for the next readiness to settle (a failed one too), then look again.
      await Promise.race(waiting.map((item) => item.ready?.catch(() => {}).then(() => {})));
    }
    return undefined;
  };
  const results: R[] = [];
  const lane = async () => {
    for (let item = await next(); item !== undefined; item = await next()) {
      const result = await run(item);
      results.push(result);
      onEnd(result);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, lane));
  return results;
}
