// Choosing one option per layer (keep, or a method at a rank) so the model
// meets a cost budget with the least summed predicted error: a
// multiple-choice knapsack, solved by dynamic programming over costs rounded
// UP to a grid (so any grid-feasible choice is truly feasible), then polished
// with exact costs to spend whatever slack the rounding left.

export interface BudgetOption {
  /** Cost this option leaves (MACs or params, whichever the budget is on). */
  cost: number;
  /** Objective contribution (weighted predicted error); keep is 0. */
  loss: number;
}

/** Grid cells for the DP; the rounding slack is at most (layers / GRID) of the decomposable cost. */
const GRID = 6000;

/**
 * Picks one option index per item so that the summed cost is <= cap and the
 * summed loss is minimal (up to the grid rounding, which only ever errs on the
 * side of saving more). Returns null when even the cheapest choice exceeds cap.
 */
export function solveBudget(items: BudgetOption[][], cap: number): number[] | null {
  let minTotal = 0;
  let maxTotal = 0;
  for (const opts of items) {
    if (opts.length === 0) throw new Error('plan: internal error: a layer with no options');
    let lo = Infinity;
    let hi = 0;
    for (const o of opts) {
      lo = Math.min(lo, o.cost);
      hi = Math.max(hi, o.cost);
    }
    minTotal += lo;
    maxTotal += hi;
  }
  if (minTotal > cap) return null;
  if (items.length === 0) return [];
  const unit = Math.max(maxTotal / GRID, 1e-9);
  const Q = Math.floor(cap / unit + 1e-9);
  const capCells = Math.min(Q, Math.ceil(maxTotal / unit) + items.length);
  let dp = new Float64Array(capCells + 1).fill(Infinity);
  dp[0] = 0;
  // Bounds of the cells dp can reach so far (every one outside is Infinity).
  let low = 0;
  let high = 0;
  const choices: Int32Array[] = [];
  for (const opts of items) {
    // Per grid cost keep only the lowest-loss option: dominated ones cannot win.
    const byCell = new Map<number, number>();
    opts.forEach((o, idx) => {
      const q = Math.ceil(o.cost / unit - 1e-9);
      if (q > capCells) return;
      const prev = byCell.get(q);
      if (prev === undefined || o.loss < opts[prev].loss) byCell.set(q, idx);
    });
    const front = paretoFront(byCell, opts);
    const next = new Float64Array(capCells + 1).fill(Infinity);
    const choice = new Int32Array(capCells + 1).fill(-1);
    // Costliest option first, cells in order: of equal sums at a cell the one from the lowest cell is kept,
    // as when every cell tries every option in turn (a cell reaches another through one option only).
    for (let k = front.cell.length - 1; k >= 0; k--) {
      const cost = front.cell[k];
      const loss = front.loss[k];
      const idx = front.idx[k];
      const last = Math.min(high, capCells - cost);
      for (let q = low; q <= last; q++) {
        const v = dp[q] + loss;
        if (v < next[q + cost]) {
          next[q + cost] = v;
          choice[q + cost] = idx;
        }
      }
    }
    if (front.cell.length > 0) {
      low += front.cell[0];
      high = Math.min(capCells, high + front.cell[front.cell.length - 1]);
    } else {
      low = capCells + 1;
    }
    choices.push(choice);
    dp = next;
  }
  let bestQ = -1;
  for (let q = 0; q <= capCells; q++) if (dp[q] < Infinity && (bestQ < 0 || dp[q] < dp[bestQ])) bestQ = q;
  if (bestQ < 0) return greedyFallback(items, cap);
  const pick = new Array<number>(items.length);
  let q = bestQ;
  for (let l = items.length - 1; l >= 0; l--) {
    const idx = choices[l][q];
    pick[l] = idx;
    q -= Math.ceil(items[l][idx].cost / unit - 1e-9);
  }
  polish(items, pick, cap);
  return pick;
}

/**
 * A layer's options by grid cell (cell -> option index) cut to those that cost more only to lose less,
 * cheapest first. One that costs more and loses no less never lies on the chosen path: swapping it for the
 * cheaper one reaches a lower total with no greater sum (rounding is monotone), and of equal minima the
 * lowest total is taken; so the DP picks the same options without it, in fewer steps.
 */
function paretoFront(byCell: Map<number, number>, opts: BudgetOption[]): { cell: Int32Array; loss: Float64Array; idx: Int32Array } {
  const cells = Int32Array.from(byCell.keys()).sort();
  const cell: number[] = [];
  const loss: number[] = [];
  const idx: number[] = [];
  let least = Infinity;
  for (const q of cells) {
    const i = byCell.get(q)!;
    if (!(opts[i].loss < least)) continue;
    least = opts[i].loss;
    cell.push(q);
    loss.push(least);
    idx.push(i);
  }
  return { cell: Int32Array.from(cell), loss: Float64Array.from(loss), idx: Int32Array.from(idx) };
}

/** When grid rounding leaves no feasible cell (a cap within rounding of the minimum): the cheapest option everywhere, then polish. */
function greedyFallback(items: BudgetOption[][], cap: number): number[] {
  const pick = items.map((opts) => {
    let best = 0;
    opts.forEach((o, i) => {
      if (o.cost < opts[best].cost || (o.cost === opts[best].cost && o.loss < opts[best].loss)) best = i;
    });
    return best;
  });
  polish(items, pick, cap);
  return pick;
}

/** Spends the exact remaining slack: repeatedly takes the single-layer change that lowers loss most and still fits. */
function polish(items: BudgetOption[][], pick: number[], cap: number): void {
  let total = 0;
  items.forEach((opts, l) => (total += opts[pick[l]].cost));
  for (;;) {
    let bestGain = 0;
    let bestL = -1;
    let bestIdx = -1;
    items.forEach((opts, l) => {
      const cur = opts[pick[l]];
      opts.forEach((o, idx) => {
        const gain = cur.loss - o.loss;
        if (gain > bestGain && total - cur.cost + o.cost <= cap) {
          bestGain = gain;
          bestL = l;
          bestIdx = idx;
        }
      });
    });
    if (bestL < 0) return;
    total += items[bestL][bestIdx].cost - items[bestL][pick[bestL]].cost;
    pick[bestL] = bestIdx;
  }
}
