/** Runs units `jobs` at a time, longest expected first, and reports each as it ends. */

/**
 * Runs every item through `run`, at most `jobs` at once, longest (`seconds`) first so that the short ones fill the
 * gaps at the end; `onEnd` hears each result as it comes. Resolves with the results in the order they ended.
 */
export async function schedule<T extends { readonly seconds: number }, R>(
  items: readonly T[],
  jobs: number,
  run: (item: T) => Promise<R>,
  onEnd: (result: R) => void,
): Promise<R[]> {
  const waiting = [...items].sort((a, b) => b.seconds - a.seconds);
  const results: R[] = [];
  const lane = async () => {
    for (let item = waiting.shift(); item !== undefined; item = waiting.shift()) {
      const result = await run(item);
      results.push(result);
      onEnd(result);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, lane));
  return results;
}
