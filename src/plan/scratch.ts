// Layer-sized double buffers that planning and building lend out and take
// back. A VGG16-sized layer's tensor or Gram matrix is 19 MiB; made afresh
// per layer, the dead ones wait for V8 to collect them (it counts such memory
// only loosely), and a zoo job's peak carried some 40 MiB of them. Lent from
// here, the same few buffers serve every layer of a plan and of its build.

export class ScratchPool {
  private free: Float64Array[] = [];
  private depth = 0;

  /**
   * `length` doubles, contents undefined: the smallest free buffer that holds them, else a new one; then the
   * free buffers too small for it are let go (layers grow along a network; kept, they would add up).
   */
  take(length: number): Float64Array {
    let best = -1;
    this.free.forEach((b, q) => {
      if (b.length >= length && (best < 0 || b.length < this.free[best].length)) best = q;
    });
    if (best < 0) {
      this.free = [];
      return new Float64Array(length);
    }
    return this.free.splice(best, 1)[0].subarray(0, length);
  }

  /** Takes back a buffer take() lent (the caller keeps no reference to it); outside within() it is let go. */
  give(view: Float64Array): void {
    if (this.depth === 0) return;
    const whole = new Float64Array(view.buffer);
    if (!this.free.some((b) => b.buffer === whole.buffer)) this.free.push(whole);
  }

  /** fn() with the pool open: buffers given back are kept for reuse until the outermost within() returns. */
  within<T>(fn: () => T): T {
    this.depth++;
    try {
      return fn();
    } finally {
      if (--this.depth === 0) this.free = [];
    }
  }
}

const pools = new WeakMap<object, ScratchPool>();

/** The pool of a conv list (a model's layers): its plan and build share it. */
export function scratchFor(convs: unknown): ScratchPool {
  if (typeof convs !== 'object' || convs === null) return new ScratchPool();
  let pool = pools.get(convs);
  if (!pool) pools.set(convs, (pool = new ScratchPool()));
  return pool;
}
