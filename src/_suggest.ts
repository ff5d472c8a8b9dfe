/** "Did you mean ...?" for a mistyped flag, command, batch field or API field. */

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const saved = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = saved;
    }
  }
  return row[b.length]!;
}

/**
 * The closest of `known` to `given`, if it is close enough to be a typo.
 *
 * @returns The suggestion, or `undefined`.
 */
export function closest(given: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = candidate.startsWith(given) && given.length >= 2 ? 0.5 : distance(given, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(given.length / 3)) ? best : undefined;
}

/** `" (did you mean 'x'?)"`, or `""`. */
export function didYouMean(given: string, known: Iterable<string>, prefix = ""): string {
  const suggestion = closest(given, known);
  return suggestion === undefined ? "" : `; did you mean '${prefix}${suggestion}'?`;
}
