// The budget solver (src/plan/budget.ts) where options tie: zero and repeated
// losses, several options in one grid cell, options that cost more and lose
// no less (the solver drops those before its DP). Checked against every
// combination, on costs that fall exactly on the grid.
import t from 'tap';
import { solveBudget, type BudgetOption } from '../src/plan/budget.js';
import { mulberry32 } from '../src/random.js';

t.test('budget solver with ties: within the cap, and the optimum where costs fall on the grid', async (t) => {
  const rand = mulberry32(11);
  const losses = [0, 0, 0.25, 0.5, 0.5, 1];
  for (let trial = 0; trial < 200; trial++) {
    const layers = 2 + Math.floor(rand() * 3);
    // Each layer's full cost is 100 cells of 1: the grid unit is sum(max)/6000, so costs in multiples of
    // layers*100/6000 are whole cells and the grid loses nothing.
    const unit = (layers * 100) / 6000;
    const items: BudgetOption[][] = Array.from({ length: layers }, () => {
      const opts: BudgetOption[] = [{ cost: 100, loss: 0 }];
      for (let k = 0; k < 1 + Math.floor(rand() * 6); k++) {
        opts.push({ cost: unit * Math.floor(rand() * (100 / unit)), loss: losses[Math.floor(rand() * losses.length)] });
      }
      return opts;
    });
    const cap = unit * Math.floor((rand() * layers * 100) / unit);
    let best = Infinity;
    const rec = (l: number, cost: number, loss: number) => {
      if (l === items.length) {
        if (cost <= cap + 1e-9) best = Math.min(best, loss);
        return;
      }
      for (const o of items[l]) rec(l + 1, cost + o.cost, loss + o.loss);
    };
    rec(0, 0, 0);
    const pick = solveBudget(items, cap);
    if (best === Infinity) {
      t.equal(pick, null, `trial ${trial}: infeasible`);
      continue;
    }
    if (!pick) {
      t.fail(`trial ${trial}: a feasible budget got no plan`);
      continue;
    }
    const cost = pick.reduce((s, idx, l) => s + items[l][idx].cost, 0);
    const loss = pick.reduce((s, idx, l) => s + items[l][idx].loss, 0);
    t.ok(cost <= cap + 1e-9, `trial ${trial}: ${cost} within the cap ${cap}`);
    t.equal(loss, best, `trial ${trial}: the optimum`);
  }
});
