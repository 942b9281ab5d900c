// Errors are measured as they are after bias correction: with it (the default)
// the planner and the builder weigh the centred input covariance, since the
// corrected bias adds the modelled mean shift back; without it (and for
// --paper) the second moments, mean included. DAC's depthwise filters are the
// plain per-channel SVD's but at the network's input, in the planner's curve
// and in the build alike (docs/auto.md).
import t from 'tap';
import { availableBackends } from '../src/index.js';
import { loadModel } from '../src/formats/index.js';
import { buildReplacements, planModel, type ModelPlan } from '../src/plan/index.js';
import { layerErrorModel, errorModelSet } from '../src/plan/error-model-set.js';
import { estimateInputs } from '../src/plan/stats.js';
import type { ConvLayerInfo, DacReplacement } from '../src/model/types.js';
import type { DecomposeBackend } from '../src/plan/backend.js';
import { vggOnnx } from './fixtures/util.js';

const backends = availableBackends();
if (backends.length === 0) t.fail('no backend loaded');

t.test('centred input moments are the second moments less the mean', async (t) => {
  const model = await loadModel(vggOnnx);
  const backend = backends[0];
  const full = estimateInputs(model.convs, backend, { weighting: 'bn' }).inputs;
  const centred = estimateInputs(model.convs, backend, { weighting: 'bn', centred: true }).inputs;
  let withMean = 0;
  for (const layer of model.convs) {
    const a = full.get(layer.name)!;
    const b = centred.get(layer.name)!;
    t.same(b.mean, a.mean, `${layer.name}: same means`);
    t.same(b.th, a.th, `${layer.name}: same tap matrices`);
    const c = layer.c;
    let worst = 0;
    for (let i = 0; i < c; i++) for (let k = 0; k < c; k++) worst = Math.max(worst, Math.abs(a.A[i * c + k] - b.A[i * c + k] - a.mean[i] * a.mean[k]));
    t.ok(worst <= 1e-9 * Math.max(1, a.A[0]), `${layer.name}: A - A_centred = mu mu^T (off by ${worst.toExponential(2)})`);
    if (a.mean.some((m) => m !== 0)) withMean++;
  }
  t.ok(withMean >= model.convs.length - 1, 'every input after a BatchNorm + ReLU has a mean to leave out');
});

t.test('plans record which moments they were made under, and builds follow the plan', async (t) => {
  const model = await loadModel(vggOnnx);
  for (const backend of backends) {
    const base = { method: 'auto' as const, flopsSaved: 0.4 };
    const byDefault = planModel(model.convs, model.other, base, backend);
    t.equal(byDefault.errorModel.centred, true, `${backend.name}: bias correction on (default): centred`);
    const uncorrected = planModel(model.convs, model.other, { ...base, biasCorrection: false }, backend);
    t.equal(uncorrected.errorModel.centred, false, `${backend.name}: without bias correction: second moments`);
    t.equal(planModel(model.convs, model.other, { ...base, paper: true }, backend).errorModel.centred, false, `${backend.name}: --paper: second moments`);
    // The mean matters on this model: the two models predict different errors for the same replacement.
    const ranks = Object.fromEntries(model.convs.slice(1).map((c) => [c.name, 2]));
    const a = planModel(model.convs, model.other, { method: 'dac', ranks }, backend);
    const b = planModel(model.convs, model.other, { method: 'dac', ranks, biasCorrection: false }, backend);
    const differs = a.layers.some((l, k) => l.method !== 'keep' && Math.abs(l.predictedError - b.layers[k].predictedError) > 1e-3 * b.layers[k].predictedError);
    t.ok(differs, `${backend.name}: centred and second-moment predictions differ`);

    // Built under the plan's model: the replacement's error under the centred set is the plan's prediction.
    const lp = a.layers.find((l) => l.method === 'dac')!;
    const layer = model.convs.find((c) => c.name === lp.name)!;
    const rep = buildReplacements(model.convs, { ...a, layers: [lp] }, backend, { biasCorrection: false, varianceCorrection: false });
    const set = errorModelSet(model.convs, a.errorModel, backend);
    const lm = layerErrorModel(set, layer, false);
    const dw = rep[0].method === 'dac' ? rep[0] : null;
    t.ok(dw, 'a DAC replacement');
    const { c, kh, kw, n } = layer;
    const K = kh * kw;
    const r = lp.rank;
    const approx = new Float64Array(n * c * K);
    for (let j = 0; j < n; j++)
      for (let i = 0; i < c; i++)
        for (let k = 0; k < r; k++) {
          const p = dw!.pointwise[j * c * r + i * r + k];
          for (let q = 0; q < K; q++) approx[(j * c + i) * K + q] += p * dw!.depthwise[(i * r + k) * K + q];
        }
    const delta = Float64Array.from(approx, (v, q) => layer.weights[q] - v);
    const weigh = (e: Float64Array) => e.reduce((s, x, j) => s + lm.d[j] * lm.d[j] * x, 0);
    const err = weigh(lm.outputEnergy(delta)) / weigh(lm.outputEnergy(layer.weights));
    t.ok(Math.abs(err - lp.predictedError) <= 2e-2 * lp.predictedError, `${backend.name} ${lp.name}: error under the centred model ${err.toFixed(5)} = predicted ${lp.predictedError.toFixed(5)}`);
  }
});

/** Relative error, under the plan's own model, of a built DAC replacement (no corrections). */
function builtError(convs: ConvLayerInfo[], plan: ModelPlan, rep: DacReplacement, backend: DecomposeBackend): number {
  const layer = convs.find((c) => c.name === rep.name)!;
  const lm = layerErrorModel(errorModelSet(convs, plan.errorModel, backend), layer, false);
  const { n, c, kh, kw } = layer;
  const K = kh * kw;
  const r = rep.rank;
  const delta = Float64Array.from(layer.weights);
  for (let j = 0; j < n; j++)
    for (let i = 0; i < c; i++)
      for (let k = 0; k < r; k++) {
        const p = rep.pointwise[j * c * r + i * r + k];
        for (let q = 0; q < K; q++) delta[(j * c + i) * K + q] -= p * rep.depthwise[(i * r + k) * K + q];
      }
  const weigh = (e: Float64Array) => e.reduce((s, x, j) => s + lm.d[j] * lm.d[j] * x, 0);
  return weigh(lm.outputEnergy(delta)) / weigh(lm.outputEnergy(layer.weights));
}

t.test('DAC filters: plain per-channel SVD in hidden layers, weighted at the network input; the curve predicts the build', async (t) => {
  const model = await loadModel(vggOnnx);
  for (const backend of backends) {
    const plan = planModel(model.convs, model.other, { method: 'dac', flopsSaved: 0.5, skipFirst: false }, backend);
    const reps = buildReplacements(model.convs, plan, backend, { biasCorrection: false, varianceCorrection: false }) as DacReplacement[];
    t.ok(reps.length >= 6, `${backend.name}: a DAC plan with ${reps.length} layers`);
    for (const rep of reps) {
      const lp = plan.layers.find((l) => l.name === rep.name)!;
      const err = builtError(model.convs, plan, rep, backend);
      // The curve's TypeScript basis and the backend's float32 SVD span the same filters.
      t.ok(Math.abs(err - lp.predictedError) <= 2e-2 * Math.max(lp.predictedError, 1e-2), `${backend.name} ${rep.name}: built ${err.toFixed(5)} = curve ${lp.predictedError.toFixed(5)}`);
    }
    const set = errorModelSet(model.convs, plan.errorModel, backend);
    for (const layer of [model.convs[0], model.convs[1]]) {
      const lm = layerErrorModel(set, layer, false);
      t.equal(lm.dacWeighted, layer.index === 0, `${layer.name}: weighted filters only at the network input`);
      const { n, c, kh, kw } = layer;
      const K = kh * kw;
      const r = 2;
      const plainFilters = backend.decomposeDac(layer.weights, { n, c, kh, kw }, r, {}).depthwise;
      const built = (buildReplacements(model.convs, { ...plan, layers: [{ name: layer.name, method: 'dac', rank: r }] }, backend) as DacReplacement[])[0];
      // Largest distance of a plain filter from the span of the built filters of its channel (both r per channel).
      let worst = 0;
      for (let i = 0; i < c; i++) {
        const B = Array.from({ length: r }, (_, k) => Array.from(built.depthwise.subarray((i * r + k) * K, (i * r + k + 1) * K)));
        for (let a = 0; a < r; a++) {
          for (let b = 0; b < a; b++) {
            const dot = B[a].reduce((s, v, q) => s + v * B[b][q], 0);
            B[a] = B[a].map((v, q) => v - dot * B[b][q]);
          }
          const norm = Math.hypot(...B[a]);
          B[a] = B[a].map((v) => (norm > 0 ? v / norm : 0));
        }
        for (let k = 0; k < r; k++) {
          let v = Array.from(plainFilters.subarray((i * r + k) * K, (i * r + k + 1) * K));
          for (const u of B) {
            const dot = u.reduce((s, x, q) => s + x * v[q], 0);
            v = v.map((x, q) => x - dot * u[q]);
          }
          worst = Math.max(worst, Math.hypot(...v));
        }
      }
      if (layer.index === 0) t.ok(worst > 0.05, `${layer.name}: the weighted filters differ from the plain ones (${worst.toFixed(3)})`);
      else t.ok(worst < 1e-3, `${layer.name}: the built filters span the plain SVD's (${worst.toExponential(2)})`);
    }
  }
});
