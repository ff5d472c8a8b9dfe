/** A render's one progress: frames done across its chunks, followed by any number of readers. */

import { Broadcast } from "../channel.ts";

/** How far a render is. */
export interface RenderProgress {
  /** Frames rendered and written so far, across every chunk. */
  readonly framesDone: number;
  /** Frames in the render. */
  readonly frameCount: number;
  /** `framesDone / frameCount` with the frames in progress counted in part, 0 to 1 (1 once every frame is done). */
  readonly fraction: number;
}

/** Sums the chunks' progress (each 0 to 1, rising) into one rising {@linkcode RenderProgress}. */
export class CombinedProgress {
  readonly #sizes: readonly number[];
  readonly #fractions: number[];
  readonly #frameCount: number;
  #current: RenderProgress;
  #ended = false;
  readonly #readers = new Broadcast<RenderProgress>();

  /** @param sizes How many frames each chunk has. */
  constructor(sizes: readonly number[]) {
    this.#sizes = sizes;
    this.#fractions = sizes.map(() => 0);
    this.#frameCount = sizes.reduce((sum, size) => sum + size, 0);
    this.#current = { framesDone: 0, frameCount: this.#frameCount, fraction: 0 };
  }

  get current(): RenderProgress {
    return this.#current;
  }

  /** Chunk `index` is at `fraction` of its frames; a lower value than before is ignored. */
  update(index: number, fraction: number): void {
    if (this.#ended || !(fraction > this.#fractions[index]!)) return;
    this.#fractions[index] = Math.min(1, fraction);
    let framesDone = 0;
    let weighted = 0;
    this.#sizes.forEach((size, at) => {
      // A chunk reports after each whole frame: its fraction times its size is a whole number, give or take rounding.
      framesDone += Math.floor(this.#fractions[at]! * size + 1e-6);
      weighted += this.#fractions[at]! * size;
    });
    const next = { framesDone, frameCount: this.#frameCount, fraction: Math.min(1, weighted / this.#frameCount) };
    if (next.fraction <= this.#current.fraction) return;
    this.#current = next;
    this.#readers.send(next);
  }

  /** No more values: every reader's iterator ends once it has read what is queued. */
  end(): void {
    this.#ended = true;
    this.#readers.close();
  }

  /** The values from now on (starting with the current one when above 0), until `end()`. */
  async *follow(): AsyncGenerator<RenderProgress> {
    const channel = this.#readers.subscribe();
    if (this.#current.fraction > 0) yield this.#current;
    yield* channel.iterate();
  }
}
