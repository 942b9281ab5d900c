// `paper: true` / `--paper`: the decompositions exactly as published, checked
// against the TypeScript reference SVD (bench/reference-svd.ts), with the
// original bias, planned under the plain weight error, and reported as such.
import t from 'tap';
import { availableBackends } from '../src/index.js';
import { DacError } from '../src/errors.js';
import { convOutputSize } from '../src/geometry.js';
import { buildReplacements, planModel } from '../src/plan/index.js';
import { explainPlan } from '../src/plan/explain.js';
import { decomposeLoaded } from '../src/decompose-model.js';
import { replacementError } from '../src/model/reconstruct.js';
import { loadModel } from '../src/formats/index.js';
import { settingsFrom } from '../src/cli/settings.js';
import { UsageError } from '../src/cli/common.js';
import type { BatchNormParams, ConvLayerInfo, LayerReplacement, Method } from '../src/model/types.js';
import { referenceChannel, referenceDac, referenceSpatial } from '../bench/reference-svd.js';
import { demoModel, seededValues, vggOnnx } from './fixtures/util.js';
import { convLayer } from './helpers/conv-layer.js';

const backends = availableBackends();
if (backends.length === 0) t.fail('no backend loaded');

function bn(n: number, seed: number): BatchNormParams {
  const v = (lo: number, hi: number, s: number) => Float32Array.from(seededValues(n, seed + s), (x) => lo + ((x + 1) / 2) * (hi - lo));
  return { gamma: v(0.2, 1.5, 1), beta: v(-0.5, 0.8, 2), mean: v(-1, 1, 3), variance: v(0.1, 3, 4), epsilon: 1e-5 };
}

/** Three 3x3 convs, each followed by a BatchNorm the next reads: the bn model has something to weigh and correct. */
function chain(): ConvLayerInfo[] {
  const widths = [3, 7, 12, 5];
  const convs: ConvLayerInfo[] = [];
  let before: BatchNormParams | null = null;
  const size = 10;
  for (let index = 0; index < 3; index++) {
    const c = widths[index];
    const n = widths[index + 1];
    const out = convOutputSize(size, 3, 1, 1, 1, 1);
    const after = bn(n, 100 + index);
    convs.push(
      convLayer({
        name: `conv${index}`, index, n, c, kh: 3, kw: 3, inH: size, inW: size, outH: out, outW: out,
        weights: seededValues(n * c * 9, 10 + index), bias: seededValues(n, 20 + index, 0.5), activation: 'linear', bnAfter: after, bnBefore: before,
      }),
    );
    before = after;
  }
  return convs;
}

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return a.length === b.length ? Math.sqrt(num / Math.max(den, 1e-30)) : Infinity;
}

/** The factors a replacement holds, as [first stage, second stage]. */
function factors(rep: LayerReplacement): [Float32Array, Float32Array] {
  if (rep.method === 'dac') return [rep.depthwise, rep.pointwise];
  if (rep.method === 'spatial') return [rep.vertical, rep.horizontal];
  return [rep.first, rep.second];
}

function reference(layer: ConvLayerInfo, method: Method, rank: number): [Float32Array, Float32Array] {
  const shape = { n: layer.n, c: layer.c, kh: layer.kh, kw: layer.kw };
  if (method === 'dac') {
    const r = referenceDac(layer.weights, shape, rank);
    return [r.depthwise, r.pointwise];
  }
  if (method === 'spatial') {
    const r = referenceSpatial(layer.weights, shape, rank);
    return [r.vertical, r.horizontal];
  }
  const r = referenceChannel(layer.weights, shape, rank);
  return [r.first, r.second];
}

const other = { macs: 100, params: 10 };
const TOL = 1e-4;

for (const b of backends) {
  t.test(`${b.name}: paper decompositions are the reference truncated SVDs, original bias, no corrections`, async (t) => {
    const convs = chain();
    for (const method of ['dac', 'spatial', 'channel'] as Method[]) {
      for (const rank of [1, 2]) {
        const plan = planModel(convs, other, { method, rank, paper: true }, b);
        t.equal(plan.mode, 'paper');
        t.equal(plan.errorModel.weighting, 'plain', 'planned under the plain error model');
        const reps = buildReplacements(convs, plan, b);
        t.equal(reps.length, convs.length);
        for (const rep of reps) {
          const layer = convs.find((c) => c.name === rep.name)!;
          const lp = plan.layers.find((l) => l.name === rep.name)!;
          const [first, second] = factors(rep);
          const [rf, rs] = reference(layer, method, lp.rank);
          const label = `${method} ${rep.name} rank/width ${lp.rank}`;
          t.ok(relDiff(first, rf) < TOL, `${label}: first stage = reference (signs included)`);
          t.ok(relDiff(second, rs) < TOL, `${label}: second stage = reference (U_r S_r)`);
          t.same(Array.from(rep.bias!), Array.from(layer.bias!), `${label}: original bias`);
          // The plain model's prediction is the squared relative weight error of exactly this replacement.
          const e = replacementError(rep, layer);
          t.ok(Math.abs(e * e - lp.predictedError) < 1e-5 * Math.max(1, lp.predictedError), `${label}: predicted error = weight error^2`);
        }
        // Without paper the same plan is built weighted and corrected: the factors differ.
        if (method === 'dac') {
          const ours = buildReplacements(convs, { ...plan, mode: 'ours', errorModel: { ...plan.errorModel, weighting: 'bn' } }, b);
          t.ok(relDiff(factors(ours[1])[1], factors(reps[1])[1]) > 1e-3, `dac rank ${rank}: ours refits the pointwise stage, paper does not`);
        }
      }
    }
  });

  t.test(`${b.name}: paper under a budget: the plain plan, built as published`, async (t) => {
    const convs = chain();
    const plan = planModel(convs, other, { method: 'dac', flopsSaved: 0.3, paper: true }, b);
    const plain = planModel(convs, other, { method: 'dac', flopsSaved: 0.3, weighting: 'plain' }, b);
    t.same(
      plan.layers.map((l) => [l.method, l.rank]),
      plain.layers.map((l) => [l.method, l.rank]),
      'same ranks as weighting plain',
    );
    t.ok(1 - plan.flops.after / plan.flops.before >= 0.3 - 1e-12, 'meets the budget');
    t.equal(plan.biasCorrection, false);
    for (const rep of buildReplacements(convs, plan, b)) {
      const layer = convs.find((c) => c.name === rep.name)!;
      if (rep.method !== 'dac') continue;
      const ref = referenceDac(layer.weights, { n: layer.n, c: layer.c, kh: 3, kw: 3 }, rep.rank);
      t.ok(relDiff(rep.pointwise, ref.pointwise) < TOL && relDiff(rep.depthwise, ref.depthwise) < TOL, `${rep.name}: reference factors`);
    }
  });
}

t.test('paper conflicts with the weighted model and bias correction', async (t) => {
  const convs = chain();
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return err instanceof DacError ? `${err.code}:${err.field}` : 'other';
    }
    return 'none';
  };
  t.equal(code(() => planModel(convs, other, { method: 'dac', rank: 2, paper: true, weighting: 'bn' })), 'EINVAL:weighting');
  t.equal(code(() => planModel(convs, other, { method: 'dac', rank: 2, paper: true, biasCorrection: true })), 'EINVAL:biasCorrection');
  t.equal(code(() => planModel(convs, other, { method: 'dac', rank: 2, paper: true, biasCorrection: false })), 'none');
  t.equal(planModel(convs, other, { method: 'dac', rank: 2 }).mode, 'ours');
});

t.test('--paper on the command line', async (t) => {
  t.equal(settingsFrom({ paper: true, rank: '2' }, 'decompose').paper, true);
  t.notOk('paper' in settingsFrom({ rank: '2' }, 'decompose'), 'absent unless given (zoo hashes settings)');
  t.throws(() => settingsFrom({ paper: true, rank: '2', weighting: 'bn' }, 'decompose'), UsageError);
});

t.test('report.json says which mode built each layer (fashion-vgg, ONNX and TF.js)', async (t) => {
  for (const file of [vggOnnx, demoModel]) {
    const model = await loadModel(file);
    const layers = model.convs.slice(1, 3).map((c) => c.name);
    for (const paper of [true, false]) {
      const { report } = decomposeLoaded(model, { method: 'dac', rank: 2, layers, paper });
      const mode = paper ? 'paper' : 'ours';
      t.equal(report.mode, mode, `${model.format}: ${mode}`);
      for (const l of report.layers) {
        if (layers.includes(l.name)) {
          t.equal(l.mode, mode, `${l.name}: ${mode}`);
          if (paper) t.ok(Math.abs(l.relError ** 2 - l.predictedError) < 1e-5, `${l.name}: relError^2 = predicted`);
        } else t.notOk('mode' in l, `${l.name}: kept, no mode`);
      }
    }
  }
});

t.test('explainPlan: each method at the chosen cost, and why DAC was or was not chosen', async (t) => {
  const b = backends[0];
  const convs = chain();
  const plan = planModel(convs, other, { method: 'auto', flopsSaved: 0.4 }, b);
  const choices = explainPlan(convs, plan, b);
  t.ok(choices.length > 0);
  for (const ch of choices) {
    const lp = plan.layers.find((l) => l.name === ch.name)!;
    t.equal(ch.method, lp.method);
    if (lp.method === 'keep') {
      t.match(ch.why, /^kept/);
      continue;
    }
    const own = ch.options.find((o) => o.method === lp.method);
    t.ok(own, `${ch.name}: the chosen method is among the options`);
    t.equal(own!.rank, lp.rank, `${ch.name}: at the chosen cost the chosen method's option is the chosen rank`);
    t.ok(Math.abs(own!.predictedError - lp.predictedError) < 1e-12, `${ch.name}: same predicted error as the plan`);
    t.ok(ch.why.startsWith(lp.method === 'dac' ? 'DAC chosen' : 'DAC not chosen'), `${ch.name}: ${ch.why}`);
    for (const o of ch.options) t.ok(o.macs <= lp.macsAfter && Math.abs(o.errorPerMacSaved * (ch.macsBefore - o.macs) - o.predictedError) < 1e-12);
  }
});
