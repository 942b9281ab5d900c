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
    // As typed arrays: the loop below runs (grid cells x options) times per layer.
    const cellCost = Int32Array.from(byCell.keys());
    const cellIdx = Int32Array.from(byCell.values());
    const cellLoss = Float64Array.from(cellIdx, (idx) => opts[idx].loss);
    const next = new Float64Array(capCells + 1).fill(Infinity);
    const choice = new Int32Array(capCells + 1).fill(-1);
    for (let q = 0; q <= capCells; q++) {
      const base = dp[q];
      if (base === Infinity) continue;
      for (let k = 0; k < cellCost.length; k++) {
        const t = q + cellCost[k];
        if (t > capCells) continue;
        const v = base + cellLoss[k];
        if (v < next[t]) {
          next[t] = v;
          choice[t] = cellIdx[k];
        }
      }
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
