// Rank planning on random conv chains (odd shapes, stride 2, dilation 2,
// same/valid padding, 1x1 and 1xK kernels, BatchNorms between): a budget is
// always met and never undershot, ranks stay in range, automatic policies
// never add MACs, skipFirst/layers are honoured, energy 1 finds exact ranks;
// the budget solver against brute force; the error model against its
// definition; replacements built under it (every backend that loads).
import t, { type Test } from 'tap';
import { availableBackends, getBackend } from '../src/index.js';
import { DacError } from '../src/errors.js';
import { convCost, modelCost, replacementCost } from '../src/cost.js';
import { convOutputSize, maxRank } from '../src/geometry.js';
import { buildReplacements, planModel, type ModelPlan, type PlanOptions } from '../src/plan/index.js';
import { solveBudget, type BudgetOption } from '../src/plan/budget.js';
import { jacobiEigen, kron } from '../src/plan/linalg.js';
import { layerErrorModel, errorModelSet } from '../src/plan/error-model-set.js';
import { estimateInputs, FEATURE_CORRELATION, reluCovariance, reluMoments, tapValidity, type InputModel } from '../src/plan/stats.js';
import { LayerErrorModel } from '../src/plan/error-model.js';
import { reconstructWeights } from '../src/model/reconstruct.js';
import type { BatchNormParams, ConvLayerInfo, Method, OtherCost } from '../src/model/types.js';
import { mulberry32 } from '../src/random.js';

/** Squared singular values (descending) of a rows x cols matrix: eigenvalues of its Gram matrix. */
function squaredSingularValues(rows: number, cols: number, at: (r: number, c: number) => number): Float64Array {
  const m = Math.min(rows, cols);
  const G = new Float64Array(m * m);
  for (let a = 0; a < m; a++) {
    for (let b = 0; b < m; b++) {
      let s = 0;
      for (let k = 0; k < Math.max(rows, cols); k++) s += rows <= cols ? at(a, k) * at(b, k) : at(k, a) * at(k, b);
      G[a * m + b] = s;
    }
  }
  return jacobiEigen(G, m).values.sort().reverse().map((v) => Math.max(v, 0));
}

function randomBn(n: number, rand: () => number): BatchNormParams {
  const f = (lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());
  return { gamma: f(0.2, 1.5), beta: f(-0.5, 0.8), mean: f(-1, 1), variance: f(0.1, 3), epsilon: 1e-5 };
}

/** A random chain of convs, each followed by a BatchNorm that the next conv reads (sometimes after a 2x2 pool). */
function randomChain(seed: number, count: number): { convs: ConvLayerInfo[]; other: OtherCost } {
  const rand = mulberry32(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  let c = 1 + Math.floor(rand() * 4);
  let h = 9 + Math.floor(rand() * 12);
  let w = 9 + Math.floor(rand() * 12);
  let bnBefore: BatchNormParams | null = null;
  const convs: ConvLayerInfo[] = [];
  for (let index = 0; index < count; index++) {
    const n = 1 + Math.floor(rand() * 17);
    const [kh, kw] = pick([
      [3, 3],
      [3, 3],
      [5, 5],
      [1, 3],
      [3, 1],
      [1, 1],
    ]);
    const stride = h > 10 && rand() < 0.25 ? 2 : 1;
    const dilation = kh === 3 && kw === 3 && h > 8 && rand() < 0.2 ? 2 : 1;
    const same = rand() < 0.7;
    const padH = same ? (dilation * (kh - 1)) >> 1 : 0;
    const padW = same ? (dilation * (kw - 1)) >> 1 : 0;
    const outH = convOutputSize(h, kh, stride, dilation, padH, padH);
    const outW = convOutputSize(w, kw, stride, dilation, padW, padW);
    if (outH < 1 || outW < 1) break;
    const bnAfter = randomBn(n, rand);
    convs.push({
      name: `conv${index}`,
      index,
      n,
      c,
      kh,
      kw,
      groups: 1,
      strides: [stride, stride],
      dilations: [dilation, dilation],
      pads: [padH, padW, padH, padW],
      inH: h,
      inW: w,
      outH,
      outW,
      weights: Float32Array.from({ length: n * c * kh * kw }, () => rand() * 2 - 1),
      bias: Float32Array.from({ length: n }, () => rand() - 0.5),
      activation: 'linear',
      bnAfter,
      bnBefore,
      skipReason: kh === 1 && kw === 1 ? '1x1 convolution' : null,
    });
    bnBefore = bnAfter;
    c = n;
    h = outH;
    w = outW;
    if (h >= 6 && w >= 6 && rand() < 0.3) {
      h >>= 1;
      w >>= 1;
    }
  }
  return { convs, other: { macs: Math.floor(rand() * 2000), params: Math.floor(rand() * 500) } };
}

function checkPlanShape(t: Test, convs: ConvLayerInfo[], other: OtherCost, plan: ModelPlan, label: string): void {
  const recomputed = modelCost(convs, other, plan);
  t.equal(plan.flops.after, recomputed.total.macs, `${label}: MACs after match the accounting`);
  t.equal(plan.params.after, recomputed.total.params, `${label}: params after match the accounting`);
  t.equal(plan.layers.length, convs.length, `${label}: one entry per conv`);
  for (const [k, lp] of plan.layers.entries()) {
    const layer = convs[k];
    t.equal(lp.name, layer.name);
    if (lp.method === 'keep') {
      t.equal(lp.macsAfter, lp.macsBefore);
      continue;
    }
    t.ok(lp.rank >= 1 && lp.rank <= maxRank(layer, lp.method), `${label}: ${lp.name} ${lp.method} rank ${lp.rank} in range`);
    t.equal(lp.macsAfter, replacementCost(layer, lp.method, lp.rank).macs);
    t.ok(lp.predictedError >= 0 && lp.predictedError <= 1, `${label}: ${lp.name} predicted error in [0, 1]`);
  }
}

/** The most any automatic plan can save: every layer at its cheapest option that saves MACs. */
function maxSavable(convs: ConvLayerInfo[], other: OtherCost, methods: Method[], resource: 'macs' | 'params'): number {
  let total = other[resource];
  let least = other[resource];
  for (const l of convs) {
    const full = convCost(l);
    total += full[resource];
    let best = full[resource];
    if (!l.skipReason) {
      for (const m of methods) {
        for (let r = 1; r <= maxRank(l, m); r++) {
          const cost = replacementCost(l, m, r);
          if (cost.macs < full.macs) best = Math.min(best, cost[resource]);
        }
      }
    }
    least += best;
  }
  return 1 - least / total;
}

const METHODS: (Method | 'auto')[] = ['dac', 'spatial', 'channel', 'auto'];

t.test('a FLOPs budget is always met, ranks stay in range, no automatic layer adds MACs', async (t) => {
  let met = 0;
  let infeasible = 0;
  for (let seed = 1; seed <= 10; seed++) {
    const { convs, other } = randomChain(seed, 3 + (seed % 4));
    for (const method of METHODS) {
      for (const F of [0.1, 0.3, 0.5, 0.7]) {
        const label = `seed ${seed} ${method} F=${F}`;
        const possible = maxSavable(convs, other, method === 'auto' ? ['dac', 'spatial', 'channel'] : [method], 'macs');
        let plan: ModelPlan;
        try {
          plan = planModel(convs, other, { method, flopsSaved: F });
        } catch (err) {
          t.type(err, DacError, label);
          t.match((err as Error).message, /cannot save/, label);
          t.ok(possible < F + 1e-9, `${label}: refused only when at most ${possible.toFixed(3)} can be saved`);
          infeasible++;
          continue;
        }
        const saved = 1 - plan.flops.after / plan.flops.before;
        t.ok(saved >= F - 1e-12, `${label}: saved ${saved.toFixed(4)} >= ${F}`);
        checkPlanShape(t, convs, other, plan, label);
        for (const lp of plan.layers) {
          if (lp.method !== 'keep') t.ok(lp.macsAfter < lp.macsBefore, `${label}: ${lp.name} saves MACs`);
        }
        met++;
      }
    }
  }
  t.ok(met > 40, `${met} budgets met`);
  t.ok(infeasible > 0, `${infeasible} infeasible budgets refused`);
});

t.test('a parameter budget, and both budgets together', async (t) => {
  for (let seed = 11; seed <= 16; seed++) {
    const { convs, other } = randomChain(seed, 4);
    for (const method of METHODS) {
      for (const opts of [{ paramsSaved: 0.3 }, { flopsSaved: 0.2, paramsSaved: 0.4 }] as Partial<PlanOptions>[]) {
        const label = `seed ${seed} ${method} ${JSON.stringify(opts)}`;
        let plan: ModelPlan;
        try {
          plan = planModel(convs, other, { method, ...opts });
        } catch (err) {
          t.match((err as Error).message, /cannot save/, label);
          continue;
        }
        checkPlanShape(t, convs, other, plan, label);
        t.ok(1 - plan.params.after / plan.params.before >= opts.paramsSaved! - 1e-12, `${label}: params budget met`);
        if (opts.flopsSaved) t.ok(1 - plan.flops.after / plan.flops.before >= opts.flopsSaved - 1e-12, `${label}: MACs budget met`);
      }
    }
  }
});

t.test('skipFirst and layers are honoured by every policy', async (t) => {
  const { convs, other } = randomChain(21, 6);
  const eligible = convs.filter((c) => !c.skipReason);
  const chosen = eligible.slice(1, 3).map((c) => c.name);
  const policies: PlanOptions[] = [
    { method: 'dac', rank: 2 },
    { method: 'spatial', energy: 0.9 },
    { method: 'channel', flopsSaved: 0.05 },
    { method: 'auto', flopsSaved: 0.05 },
  ];
  for (const p of policies) {
    const label = JSON.stringify(p);
    const skip = planModel(convs, other, { ...p, skipFirst: true });
    t.equal(skip.layers[0].method, 'keep', `${label}: first conv kept`);
    t.match(skip.layers[0].reason, /skipFirst|1x1/, `${label}: with the reason`);
    let only: ModelPlan;
    try {
      only = planModel(convs, other, { ...p, layers: chosen });
    } catch (err) {
      t.match((err as Error).message, /cannot save/, label);
      continue;
    }
    for (const lp of only.layers) {
      if (!chosen.includes(lp.name)) {
        t.equal(lp.method, 'keep', `${label}: ${lp.name} not selected, kept`);
      }
    }
    for (const lp of only.layers.filter((l) => chosen.includes(l.name))) {
      // energy keeps a selected layer only where the rank it needs does not save MACs
      t.ok(lp.method !== 'keep' || /does not save MACs|budget needs/.test(lp.reason ?? ''), `${label}: ${lp.name} decomposed, or kept saying why`);
    }
    t.ok(only.layers.some((lp) => lp.method !== 'keep') || p.energy !== undefined, `${label}: a selected layer is decomposed`);
  }
});

function exactLayer(method: Method, rank: number, seed: number): ConvLayerInfo {
  const rand = mulberry32(seed);
  const n = 6;
  const c = 5;
  const kh = 3;
  const kw = 3;
  const K = kh * kw;
  const w = new Float32Array(n * c * K);
  const r = () => rand() * 2 - 1;
  if (method === 'dac') {
    // each input channel's n x K slice has rank `rank`
    for (let i = 0; i < c; i++) {
      const f = Array.from({ length: rank }, () => Array.from({ length: K }, r));
      for (let j = 0; j < n; j++) {
        const a = Array.from({ length: rank }, r);
        for (let t = 0; t < K; t++) w[(j * c + i) * K + t] = a.reduce((s, av, k) => s + av * f[k][t], 0);
      }
    }
  } else if (method === 'spatial') {
    const v = Array.from({ length: rank * c * kh }, r);
    const hz = Array.from({ length: n * rank * kw }, r);
    for (let j = 0; j < n; j++)
      for (let i = 0; i < c; i++)
        for (let y = 0; y < kh; y++)
          for (let x = 0; x < kw; x++) {
            let s = 0;
            for (let m = 0; m < rank; m++) s += v[(m * c + i) * kh + y] * hz[(j * rank + m) * kw + x];
            w[((j * c + i) * kh + y) * kw + x] = s;
          }
  } else {
    const f = Array.from({ length: rank * c * K }, r);
    const s2 = Array.from({ length: n * rank }, r);
    for (let j = 0; j < n; j++)
      for (let q = 0; q < c * K; q++) {
        let s = 0;
        for (let m = 0; m < rank; m++) s += s2[j * rank + m] * f[m * c * K + q];
        w[j * c * K + q] = s;
      }
  }
  const chain = randomChain(seed, 1).convs[0];
  return {
    ...chain,
    name: `exact-${method}`,
    n,
    c,
    kh,
    kw,
    strides: [1, 1],
    dilations: [1, 1],
    pads: [1, 1, 1, 1],
    inH: 7,
    inW: 9,
    outH: 7,
    outW: 9,
    weights: w,
    bias: new Float32Array(n),
    bnAfter: randomBn(n, rand),
    bnBefore: randomBn(c, rand),
    skipReason: null,
  };
}

t.test('energy 1 finds the exact rank of exactly low-rank weights, for each method and weighting', async (t) => {
  for (const method of ['dac', 'spatial', 'channel'] as Method[]) {
    for (const rank of [1, 2, 3]) {
      const layer = exactLayer(method, rank, 100 + rank);
      for (const weighting of ['bn', 'plain'] as const) {
        const plan = planModel([layer], { macs: 0, params: 0 }, { method, energy: 1, weighting });
        t.equal(plan.layers[0].method, method);
        t.equal(plan.layers[0].rank, rank, `${method} ${weighting}: exact rank ${rank}`);
        t.ok(plan.layers[0].predictedError < 1e-6, `${method} ${weighting}: predicted error ${plan.layers[0].predictedError}`);
        const lower = planModel([layer], { macs: 0, params: 0 }, { method, ranks: { [layer.name]: Math.max(1, rank - 1) }, weighting });
        if (rank > 1) t.ok(lower.layers[0].predictedError > 1e-4, `${method} ${weighting}: one rank less is not exact`);
      }
    }
  }
});

t.test('only an explicit rank decomposes a layer where that adds MACs', async (t) => {
  // n=2 outputs: DAC at any rank costs more than the conv (r/2 + r/9 >= 1 for r >= 2; r = 1 saves)
  const rand = mulberry32(7);
  const layer: ConvLayerInfo = { ...exactLayer('dac', 1, 7), name: 'narrow', n: 2, c: 3 };
  layer.weights = Float32Array.from({ length: 2 * 3 * 9 }, () => rand() - 0.5);
  layer.bias = new Float32Array(2);
  layer.bnAfter = randomBn(2, rand);
  layer.bnBefore = randomBn(3, rand);
  for (const method of ['auto', 'dac', 'spatial', 'channel'] as const) {
    for (const energy of [0.5, 0.99, 1]) {
      const plan = planModel([layer], { macs: 0, params: 0 }, { method, energy });
      const lp = plan.layers[0];
      t.ok(lp.method === 'keep' || lp.macsAfter < lp.macsBefore, `${method} energy ${energy}: ${lp.method} ${lp.rank}`);
      if (lp.method === 'keep') t.match(lp.reason, /does not save MACs|saves MACs/, `${method} energy ${energy}: kept with a reason`);
    }
  }
  // energy 1 needs DAC rank 2 of 2 here, which costs more than the conv: kept, saying why
  const exact = planModel([layer], { macs: 0, params: 0 }, { method: 'dac', energy: 1 }).layers[0];
  t.equal(exact.method, 'keep');
  t.match(exact.reason, /dac needs rank 2 to keep that energy, which does not save MACs/);
  // explicit ranks are applied as asked, with a note
  const asked = planModel([layer], { macs: 0, params: 0 }, { method: 'dac', rank: 2 });
  t.ok(asked.layers[0].macsAfter >= asked.layers[0].macsBefore);
  t.match(asked.layers[0].reason, /does not save MACs/);
});

t.test('uniform rank: DAC rank as given (clamped), spatial/channel at the matching width', async (t) => {
  const { convs, other } = randomChain(31, 5);
  const dac = planModel(convs, other, { method: 'dac', rank: 3 });
  const sp = planModel(convs, other, { method: 'spatial', rank: 3 });
  for (const [k, l] of convs.entries()) {
    if (l.skipReason) continue;
    t.equal(dac.layers[k].rank, Math.min(3, maxRank(l, 'dac')));
    const want = Math.min(maxRank(l, 'spatial'), Math.max(1, Math.round((3 * l.c * (l.kh * l.kw + l.n)) / (l.c * l.kh + l.n * l.kw))));
    t.equal(sp.layers[k].rank, want);
  }
});

t.test('predicted errors under plain weighting are the truncated-SVD tail energies', async (t) => {
  const { convs, other } = randomChain(41, 4);
  for (const l of convs.filter((c) => !c.skipReason)) {
    const { n, c, kh, kw } = l;
    const K = kh * kw;
    const w = l.weights;
    const total = w.reduce((s, v) => s + v * v, 0);
    // DAC: per input channel n x K slices; spatial: (c*kh) x (n*kw); channel: n x (c*K)
    const dacS = Array.from({ length: c }, (_, i) => squaredSingularValues(n, K, (j, q) => w[(j * c + i) * K + q]));
    const spS = squaredSingularValues(c * kh, n * kw, (row, col) => w[((Math.floor(col / kw) * c + Math.floor(row / kh)) * kh + (row % kh)) * kw + (col % kw)]);
    const chS = squaredSingularValues(n, c * K, (j, q) => w[j * c * K + q]);
    const tail = (s: Float64Array, r: number) => s.slice(r).reduce((a, b) => a + b, 0);
    for (const method of ['dac', 'spatial', 'channel'] as Method[]) {
      const r = Math.max(1, Math.floor(maxRank(l, method) / 2));
      const plan = planModel(convs, other, { method, ranks: { [l.name]: r }, weighting: 'plain' });
      const lp = plan.layers.find((x) => x.name === l.name)!;
      const want =
        method === 'dac' ? dacS.reduce((s, v) => s + tail(v, r), 0) / total : tail(method === 'spatial' ? spS : chS, r) / total;
      t.ok(Math.abs(lp.predictedError - want) < 1e-6, `${l.name} ${method} r=${r}: ${lp.predictedError} vs ${want}`);
    }
  }
});

t.test('budget solver: feasible, and at least as good as the best choice under the grid-tightened cap', async (t) => {
  const rand = mulberry32(5);
  for (let trial = 0; trial < 40; trial++) {
    const items: BudgetOption[][] = Array.from({ length: 2 + Math.floor(rand() * 3) }, () => {
      const full = 50 + Math.floor(rand() * 200);
      const opts: BudgetOption[] = [{ cost: full, loss: 0 }];
      for (let k = 0; k < 1 + Math.floor(rand() * 5); k++) opts.push({ cost: Math.floor(rand() * full), loss: rand() });
      return opts;
    });
    const maxTotal = items.reduce((s, o) => s + Math.max(...o.map((x) => x.cost)), 0);
    const minTotal = items.reduce((s, o) => s + Math.min(...o.map((x) => x.cost)), 0);
    const cap = minTotal + rand() * (maxTotal - minTotal) * 1.1 - 5;
    const pick = solveBudget(items, cap);
    // brute force over all combinations
    let best = Infinity;
    let bestTight = Infinity;
    const unit = maxTotal / 6000;
    const rec = (l: number, cost: number, loss: number) => {
      if (l === items.length) {
        if (cost <= cap) best = Math.min(best, loss);
        if (cost <= cap - items.length * unit) bestTight = Math.min(bestTight, loss);
        return;
      }
      for (const o of items[l]) rec(l + 1, cost + o.cost, loss + o.loss);
    };
    rec(0, 0, 0);
    if (best === Infinity) {
      t.equal(pick, null, `trial ${trial}: infeasible`);
      continue;
    }
    t.ok(pick, `trial ${trial}: feasible`);
    const cost = pick!.reduce((s, idx, l) => s + items[l][idx].cost, 0);
    const loss = pick!.reduce((s, idx, l) => s + items[l][idx].loss, 0);
    t.ok(cost <= cap, `trial ${trial}: within cap`);
    t.ok(loss >= best - 1e-12, `trial ${trial}: not better than the optimum`);
    t.ok(loss <= bestTight + 1e-12, `trial ${trial}: ${loss} <= ${bestTight}`);
  }
});

t.test('bad options are rejected with the field named', async (t) => {
  const { convs, other } = randomChain(51, 3);
  const name = convs[0].name;
  const cases: [PlanOptions, RegExp][] = [
    [{ method: 'dac' }, /give one policy/],
    [{ method: 'dac', rank: 2, energy: 0.9 }, /only one policy/],
    [{ method: 'auto', rank: 2 }, /auto chooses ranks/],
    [{ method: 'dac', flopsSaved: 1.2 }, /flopsSaved/],
    [{ method: 'dac', flopsSaved: 0 }, /flopsSaved/],
    [{ method: 'dac', energy: 0 }, /energy/],
    [{ method: 'dac', rank: 0 }, /rank/],
    [{ method: 'dac', ranks: { nope: 2 } }, /nope.*ranks|ranks.*nope|layer nope/],
    [{ method: 'dac', ranks: { [name]: 99 } }, /out of range/],
    [{ method: 'dac', rank: 1, layers: ['nope'] }, /nope/],
    [{ method: 'svd' as 'dac', rank: 1 }, /method/],
    [{ method: 'dac', rank: 1, spatialCorrelation: 1 }, /spatialCorrelation/],
    [{ method: 'dac', rank: 1, weighting: 'x' as 'bn' }, /weighting/],
  ];
  for (const [opts, re] of cases) t.throws(() => planModel(convs, other, opts), re, JSON.stringify(opts));
  t.throws(() => planModel(convs, { macs: -1, params: 0 }, { method: 'dac', rank: 1 }), /other/);
});

t.test('ReLU moments and tap validity of the input model', async (t) => {
  // E[relu(z)] and E[relu(z)^2] against a fine Riemann sum
  for (const [mu, sd] of [
    [0, 1],
    [0.7, 0.4],
    [-1.2, 0.9],
  ]) {
    let m1 = 0;
    let m2 = 0;
    const h = 1e-3;
    for (let z = -10; z <= 10; z += h) {
      const p = Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);
      const y = Math.max(mu + sd * z, 0);
      m1 += y * p * h;
      m2 += y * y * p * h;
    }
    const got = reluMoments(mu, sd);
    t.ok(Math.abs(got.mean - m1) < 1e-5 && Math.abs(got.second - m2) < 1e-5, `mu ${mu} sd ${sd}`);
  }
  // correlation 1 gives the variance; correlation 0 gives no covariance
  const mu = Float64Array.from([0.3, 0.3]);
  const sd = Float64Array.from([1, 1]);
  const full = reluCovariance(mu, sd, Float64Array.from([1, 1, 1, 1]));
  const v = reluMoments(0.3, 1);
  t.ok(Math.abs(full.cov[1] - (v.second - v.mean * v.mean)) < 1e-3, 'perfectly correlated channels');
  const none = reluCovariance(mu, sd, Float64Array.from([1, 0, 0, 1]));
  t.ok(Math.abs(none.cov[1]) < 1e-6, 'independent channels');
  // a 3x3 map with padding 1: the outer taps read inside at 2 of 3 positions
  const v3 = tapValidity(3, 3, 3, 1, 1, 1);
  t.same(Array.from(v3.single, (x) => +x.toFixed(6)), [0.666667, 1, 0.666667]);
  t.equal(+v3.pair[2].toFixed(6), 0.333333, 'taps 0 and 2 together only at the middle position');
});

const backends = availableBackends();

t.test('dacOutputEnergies: outputEnergy of the weights and of the pair, where Sigma is diagonal (every backend)', { skip: backends.length === 0 && 'no backend loads' }, async (t) => {
  const { convs } = randomChain(67, 5);
  for (const backend of backends) {
    for (const [weighting, spatialCorrelation] of [['plain', 0], ['bn', FEATURE_CORRELATION]] as const) {
      const set = errorModelSet(convs, { weighting, spatialCorrelation }, backend);
      for (const layer of convs.filter((c) => !c.skipReason)) {
        const { n, c, kh, kw } = layer;
        const K = kh * kw;
        const r = Math.max(1, maxRank(layer, 'dac') - 1);
        const { depthwise, pointwise } = backend.decomposeDac(layer.weights, layer, r);
        const model = layerErrorModel(set, layer, weighting === 'plain');
        const got = model.dacOutputEnergies(depthwise, pointwise, r);
        const label = `${backend.name} ${weighting} ${layer.name} ${n}x${c}x${kh}x${kw} r=${r}`;
        if (weighting === 'bn' && K > 1) {
          t.equal(got, null, `${label}: correlated taps, no diagonal Sigma`);
          continue;
        }
        if (!got) {
          t.fail(`${label}: Sigma is diagonal`);
          continue;
        }
        // The pair's kernel in double, as the TypeScript outputEnergy reads it.
        const pair = new Float64Array(n * c * K);
        for (let j = 0; j < n; j++)
          for (let i = 0; i < c; i++)
            for (let m = 0; m < r; m++)
              for (let q = 0; q < K; q++) pair[(j * c + i) * K + q] += pointwise[(j * c + i) * r + m] * depthwise[(i * r + m) * K + q];
        const close = (a: Float64Array, b: Float64Array) => a.every((v, j) => Math.abs(v - b[j]) <= 1e-12 * Math.abs(b[j]));
        t.ok(close(got.weights, model.outputEnergy(layer.weights)), `${label}: the weights`);
        t.ok(close(got.pair, model.outputEnergy(pair)), `${label}: the pair`);
      }
    }
  }
});

t.test('replacements are built under the plan\'s error model (every backend)', { skip: backends.length === 0 && 'no backend loads' }, async (t) => {
  const { convs, other } = randomChain(61, 5);
  const eligible = convs.filter((c) => !c.skipReason);
  for (const backend of backends) {
    for (const method of ['dac', 'spatial', 'channel'] as Method[]) {
      const ranks: Record<string, number> = {};
      for (const l of eligible) ranks[l.name] = Math.max(1, Math.floor(maxRank(l, method) / 2));
      const plan = planModel(convs, other, { method, ranks }, backend);
      const reps = buildReplacements(convs, plan, backend, { biasCorrection: false, varianceCorrection: false });
      t.equal(reps.length, eligible.length, `${backend.name} ${method}: one replacement per decomposed layer`);
      const set = errorModelSet(convs, plan.errorModel, backend);
      for (const rep of reps) {
        const layer = convs.find((c) => c.name === rep.name)!;
        const lp = plan.layers.find((x) => x.name === rep.name)!;
        const model = layerErrorModel(set, layer, false);
        const approx = reconstructWeights(rep, layer);
        const delta = Float32Array.from(layer.weights, (v, q) => v - approx[q]);
        const dd = (e: Float64Array) => e.reduce((s, x, j) => s + model.d[j] * model.d[j] * x, 0);
        const err = dd(model.outputEnergy(delta)) / dd(model.outputEnergy(layer.weights));
        // DAC takes its filters from the backend's float32 SVD and refits; spatial/channel match to rounding.
        const tol = (method === 'dac' ? 2e-2 : 1e-3) * Math.max(lp.predictedError, 1e-2);
        t.ok(Math.abs(err - lp.predictedError) <= tol, `${backend.name} ${method} ${rep.name}: modelled error ${err.toFixed(5)} = predicted ${lp.predictedError.toFixed(5)}`);
        t.equal(rep.bias![0], layer.bias![0], 'bias untouched without bias correction');
      }
      // with the corrections: exact ranks still reconstruct the layer, and biases move by the modelled mean shift only
      const exact = planModel(convs, other, { method, energy: 1 }, backend);
      for (const rep of buildReplacements(convs, exact, backend)) {
        const layer = convs.find((c) => c.name === rep.name)!;
        const approx = reconstructWeights(rep, layer);
        let maxDiff = 0;
        let maxW = 0;
        layer.weights.forEach((v, q) => {
          maxDiff = Math.max(maxDiff, Math.abs(v - approx[q]));
          maxW = Math.max(maxW, Math.abs(v));
        });
        t.ok(maxDiff <= 1e-3 * maxW, `${backend.name} ${method} ${rep.name}: exact rank reconstructs (${maxDiff})`);
        const db = rep.bias!.reduce((m, b, j) => Math.max(m, Math.abs(b - layer.bias![j])), 0);
        t.ok(db <= 1e-3, `${backend.name} ${method} ${rep.name}: bias nearly unchanged at exact rank (${db})`);
      }
    }
  }
});

t.test('plain weighting: the backend\'s per-channel SVD pair is the refit\'s, with the curve\'s error (every backend)', { skip: backends.length === 0 && 'no backend loads' }, async (t) => {
  const { convs } = randomChain(67, 5);
  for (const backend of backends) {
    const plainSet = errorModelSet(convs, { weighting: 'plain', spatialCorrelation: 0.5, centred: false }, backend);
    const bnSet = errorModelSet(convs, { weighting: 'bn', spatialCorrelation: 0.5, centred: false }, backend);
    for (const layer of convs.filter((c) => !c.skipReason)) {
      const { n, c, kh, kw } = layer;
      t.notOk(layerErrorModel(bnSet, layer, false).dacSvdIsBest, `${backend.name} ${layer.name}: the bn model (BatchNorms around) needs the refit`);
      const model = layerErrorModel(plainSet, layer, true);
      t.ok(model.dacSvdIsBest, `${backend.name} ${layer.name}: plain weighting only rescales`);
      t.equal(model.dacSvdInput(), layer.weights, `${backend.name} ${layer.name}: the SVD is of the weights themselves`);
      for (let r = 1; r <= maxRank(layer, 'dac'); r++) {
        const svd = backend.decomposeDac(model.dacSvdInput(), { n, c, kh, kw }, r);
        // Before the curve exists the error comes from the SVD's float32 singular values; after, from the curve.
        const fromSingular = model.svdFactors(svd.depthwise.slice(), svd.pointwise.slice(), r, svd.singular).error;
        model.curve('dac');
        const got = model.svdFactors(svd.depthwise.slice(), svd.pointwise.slice(), r, svd.singular);
        const want = model.fitPointwise(model.dacTransformedFilters(svd.depthwise, r), r);
        const rel = (a: ArrayLike<number>, b: ArrayLike<number>) => {
          let num = 0;
          let den = 0;
          for (let q = 0; q < b.length; q++) {
            num += (a[q] - b[q]) ** 2;
            den += b[q] ** 2;
          }
          return Math.sqrt(num / Math.max(den, 1e-30));
        };
        const label = `${backend.name} ${layer.name} r=${r}`;
        // At full rank the refit's ridge (1e-12 of its system) leaves ~1e-12 where the curve has the exact 0.
        t.ok(Math.abs(got.error - want.error) <= 1e-9 * Math.max(want.error, 1e-2), `${label}: error ${got.error} = refit's ${want.error}`);
        t.ok(Math.abs(fromSingular - want.error) <= 1e-6 * Math.max(want.error, 1e-2), `${label}: from the singular values ${fromSingular}`);
        t.ok(rel(got.first, want.depthwise) <= 1e-5, `${label}: the refit's depthwise filters (${rel(got.first, want.depthwise)})`);
        t.ok(rel(got.last, want.pointwise) <= 1e-5, `${label}: the refit's pointwise stage (${rel(got.last, want.pointwise)})`);
      }
    }
  }
});

t.test('cholesky of a diagonal matrix (plain weighting\'s A): the square roots of the ridged diagonal, pivots floored (every backend)', { skip: backends.length === 0 && 'no backend loads' }, async (t) => {
  const rand = mulberry32(71);
  const diagonals = [
    [1, 1, 1, 1],
    [2.5, 0, 0.3, 7, 1e-9],
    [0, 0, 0],
    Array.from({ length: 40 }, () => rand() * 3),
    Array.from({ length: 130 }, () => rand() * 3),
  ];
  for (const backend of backends) {
    for (const diag of diagonals) {
      const m = diag.length;
      const a = new Float64Array(m * m);
      diag.forEach((v, i) => (a[i * m + i] = v));
      for (const ridge of [1e-3, 0]) {
        // linalg.h's rule: ridge * (mean diagonal, or 1 when that is not positive) added, pivots below 1e-6 of it raised to it.
        const mean = diag.reduce((x, v) => x + v, 0) / m;
        const add = ridge * (mean > 0 ? mean : 1);
        const floor = add > 0 ? add * 1e-6 : 1e-300;
        const got = backend.cholesky(a, m, ridge);
        let worst = 0;
        for (let i = 0; i < m; i++)
          for (let j = 0; j < m; j++) {
            const want = i === j ? Math.sqrt(Math.max(diag[i] + add, floor)) : 0;
            worst = Math.max(worst, Math.abs(got[i * m + j] - want) / Math.max(want, 1e-300));
          }
        t.ok(worst <= 1e-15, `${backend.name} [${diag.slice(0, 5).join(', ')}${m > 5 ? ', ...' : ''}] ridge ${ridge}: worst relative difference ${worst}`);
      }
    }
    t.throws(() => backend.cholesky(Float64Array.of(1, 0, 0, NaN), 2, 1e-3), { code: 'EKERNEL' }, `${backend.name}: a non-finite diagonal is refused`);
  }
});

t.test('symmetricEigenvalues of several matrices in one call: each as alone, whatever the threads (every backend)', { skip: backends.length === 0 && 'no backend loads' }, async (t) => {
  const rand = mulberry32(72);
  for (const m of [1, 7, 65]) {
    const count = 3;
    const all = new Float64Array(count * m * m);
    for (let b = 0; b < count; b++) {
      const x = Array.from({ length: m * (m + 2) }, () => rand() - 0.5);
      for (let i = 0; i < m; i++)
        for (let j = 0; j <= i; j++) {
          let v = 0;
          for (let k = 0; k < m + 2; k++) v += x[i * (m + 2) + k] * x[j * (m + 2) + k];
          all[b * m * m + i * m + j] = all[b * m * m + j * m + i] = v;
        }
    }
    for (const backend of backends) {
      const alone = Array.from({ length: count }, (_, b) => [...backend.symmetricEigenvalues(all.slice(b * m * m, (b + 1) * m * m), m)]);
      for (const threads of [1, 2, 3]) {
        const together = backend.symmetricEigenvalues(all, m, {}, { threads, count });
        t.same(Array.from({ length: count }, (_, b) => [...together.subarray(b * m, (b + 1) * m)]), alone, `${backend.name} m=${m} threads ${threads}`);
      }
    }
  }
});

t.test('buildReplacements rejects plans that do not fit the model', async (t) => {
  const { convs } = randomChain(71, 3);
  const name = convs.find((c) => !c.skipReason)!.name;
  t.throws(() => buildReplacements(convs, { layers: [{ name: 'nope', method: 'dac', rank: 1 }] }), /not a conv/);
  t.throws(() => buildReplacements(convs, { layers: [{ name, method: 'svd', rank: 1 }] }), /unknown method/);
  t.throws(() => buildReplacements(convs, { layers: [{ name, method: 'dac', rank: 999 }] }), /out of range/);
  t.same(buildReplacements(convs, { layers: [{ name, method: 'keep', rank: 0 }] }), []);
});

/** A layer with an input model given directly: channel second moments A, tap matrices th = tw. */
function modelledLayer(n: number, c: number, seed: number): ConvLayerInfo {
  const rand = mulberry32(seed);
  return {
    ...exactLayer('dac', 1, seed),
    name: `modelled-${n}x${c}`,
    n,
    c,
    weights: Float32Array.from({ length: n * c * 9 }, () => rand() * 2 - 1),
    bias: new Float32Array(n),
    bnAfter: randomBn(n, rand),
    bnBefore: null,
  };
}

function inputModel(A: Float64Array, c: number): InputModel {
  const T = Float64Array.from([1, 0.5, 0.2, 0.5, 1, 0.5, 0.2, 0.5, 1]);
  const ones = Float64Array.from({ length: 9 }, () => 1);
  return { A, mean: new Float64Array(c), th: T, tw: T, validH: ones.subarray(0, 3), validW: ones.subarray(0, 3), pairH: ones, pairW: ones, source: 'batchnorm' };
}

/** A random symmetric positive definite c x c matrix, or a diagonal one with one dead channel. */
function channelMoments(c: number, diagonal: boolean, seed: number): Float64Array {
  const rand = mulberry32(seed);
  const A = new Float64Array(c * c);
  if (diagonal) {
    for (let i = 0; i < c; i++) A[i * c + i] = i === 1 ? 0 : 0.2 + rand();
    return A;
  }
  const X = Float64Array.from({ length: c * c }, () => rand() - 0.5);
  for (let i = 0; i < c; i++)
    for (let j = 0; j < c; j++) {
      let s = i === j ? 0.1 : 0;
      for (let k = 0; k < c; k++) s += X[i * c + k] * X[j * c + k];
      A[i * c + j] = s / c;
    }
  return A;
}

t.test('DAC error curve: refit by channel blocks = dense refit = the definition; tail ranks = explicit projection', async (t) => {
  for (const backend of backends) {
    for (const diagonal of [true, false]) {
      // small layer: every rank refitted; the error of the returned factors under Sigma = A (x) Th (x) Tw, explicitly
      const layer = modelledLayer(7, 6, 81);
      const { n, c } = layer;
      const A = channelMoments(c, diagonal, 82);
      const model = new LayerErrorModel(layer, inputModel(A, c), false, backend);
      const curve = model.curve('dac');
      // Sigma as the model holds it: A, and the tap matrices through their (ridged) Cholesky factors.
      const gram = (L: Float64Array) => Float64Array.from({ length: 9 }, (_, q) => L[Math.floor(q / 3) * 3] * L[(q % 3) * 3] + L[Math.floor(q / 3) * 3 + 1] * L[(q % 3) * 3 + 1] + L[Math.floor(q / 3) * 3 + 2] * L[(q % 3) * 3 + 2]);
      const Sigma = kron(kron(A, c, gram(model.mh), 3), 3 * c, gram(model.mw), 3);
      const m = 9 * c;
      const energy = (w: ArrayLike<number>) => {
        let e = 0;
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < m; p++) for (let q = 0; q < m; q++) s += w[j * m + p] * Sigma[p * m + q] * w[j * m + q];
          e += model.d[j] * model.d[j] * s;
        }
        return e;
      };
      const total = energy(layer.weights);
      for (let r = 1; r <= 7; r++) {
        const f = model.dacFactors(r);
        const approx = reconstructWeights({ method: 'dac', name: layer.name, rank: r, depthwise: Float32Array.from(f.depthwise), pointwise: Float32Array.from(f.pointwise), bias: null }, layer);
        // float32 factors: compare at single precision
        const err = energy(Float64Array.from(layer.weights, (v, q) => v - approx[q])) / total;
        t.ok(Math.abs(err - curve[r]) < 1e-5, `${backend.name} diagonal=${diagonal} r=${r}: ${err} = ${curve[r]}`);
        // (at full rank the curve is exactly 0; the refit's 1e-12 ridge leaves about that much)
        t.ok(Math.abs(f.error - curve[r]) < 1e-10, `${backend.name} diagonal=${diagonal} r=${r}: factors' error ${f.error} = curve`);
      }
      if (diagonal) {
        // the same A with off-diagonals too small to matter goes through the dense solve
        const near = Float64Array.from(A, (v, q) => (Math.floor(q / c) === q % c ? v : 1e-300));
        const dense = new LayerErrorModel(layer, inputModel(near, c), false, backend);
        t.ok(maxDiff(dense.curve('dac'), curve) < 1e-12, `${backend.name}: block refit = dense refit`);
        for (const r of [1, 3, 7]) {
          t.ok(maxDiff(dense.dacFactors(r).pointwise, model.dacFactors(r).pointwise) < 1e-9, `${backend.name} r=${r}: same pointwise weights`);
        }
        t.equal(model.dacFactors(3).pointwise[1 * 3], 0, `${backend.name}: a dead channel gets no pointwise weight`);
      }
      // wide layer: c*r > REFIT_LIMIT beyond rank 3, so ranks 4..9 are per-channel projections
      const wide = modelledLayer(9, 400, 83);
      const wideA = channelMoments(400, diagonal, 84);
      const wm = new LayerErrorModel(wide, inputModel(wideA, 400), false, backend);
      const wc = wm.curve('dac');
      for (let r = 1; r <= 9; r++) {
        t.ok(Math.abs(wm.dacFactors(r).error - wc[r]) < 1e-10, `${backend.name} diagonal=${diagonal} c=400 r=${r}: ${wm.dacFactors(r).error} = ${wc[r]}`);
      }
      t.ok(wc[9] < 1e-12, `${backend.name}: full rank is exact`);
    }
  }
});

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

t.test('a model with no BatchNorm statistics (BN folded) is planned as plain by default', async (t) => {
  const { convs } = randomChain(71, 6);
  const folded: ConvLayerInfo[] = convs.map((c, k) => ({ ...c, bnAfter: null, bnBefore: null, inputConv: k > 0 ? convs[k - 1].name : null }));
  const other = { macs: 0, params: 0 };
  const options: PlanOptions = { method: 'dac', flopsSaved: 0.3 };
  const byDefault = planModel(folded, other, options);
  const plain = planModel(folded, other, { ...options, weighting: 'plain' });
  t.equal(byDefault.errorModel.weighting, 'plain', 'the plan records the weighting it used');
  t.same(byDefault.layers, plain.layers, 'the same plan as plain');
  t.equal(planModel(convs, other, options).errorModel.weighting, 'bn', 'with BatchNorms the default stays bn');
  // Asked for bn anyway: a hidden layer fed by a conv gets white taps, not the network input's image prior.
  const { inputs } = estimateInputs(folded, getBackend(), { weighting: 'bn' });
  const hidden = folded.find((c) => c.index > 0 && c.kh === 3)!;
  const th = inputs.get(hidden.name)!.th;
  t.equal(th[1], 0, 'neighbouring taps of a hidden layer are uncorrelated');
  const first = estimateInputs([{ ...folded[0], kh: 3, kw: 3, pads: [1, 1, 1, 1], weights: new Float32Array(folded[0].n * folded[0].c * 9), inH: 8, inW: 8, outH: 8, outW: 8, skipReason: null }], getBackend(), { weighting: 'bn' });
  t.ok(first.inputs.get(folded[0].name)!.th[1] > 0.5, 'the network input keeps its neighbouring-pixel prior');
});
