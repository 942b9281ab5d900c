// The build forms W' a block of output channels at a time (src/plan/build.ts, replaceLayer) and the report
// its residual a block of rows at a time (src/model/reconstruct.ts). On layers that span several blocks,
// the results must be those of the whole W', which the references here form with reconstructWeights.
import t from 'tap';
import { availableBackends } from '../src/index.js';
import { buildReplacements } from '../src/plan/index.js';
import { factorLayers } from '../src/plan/build.js';
import { errorModelSet, layerErrorModel } from '../src/plan/error-model-set.js';
import { FEATURE_CORRELATION } from '../src/plan/stats.js';
import { reconstructWeights } from '../src/model/reconstruct.js';
import type { ConvLayerInfo, LayerReplacement, Method } from '../src/model/types.js';
import { mulberry32 } from '../src/random.js';
import { convLayer } from './helpers/conv-layer.js';

const backends = availableBackends();

/** 250 outputs of 512 x 3x3 (4,608 values each): W' in three blocks (113, 113, 24 outputs). */
function wideLayer(seed: number): ConvLayerInfo {
  const rand = mulberry32(seed);
  const [n, c] = [250, 512];
  const f = (length: number, lo: number, hi: number) => Float32Array.from({ length }, () => lo + (hi - lo) * rand());
  return convLayer({
    name: 'wide', n, c, kh: 3, kw: 3, inH: 7, inW: 7, outH: 7, outW: 7, weights: f(n * c * 9, -1, 1), bias: f(n, -0.5, 0.5),
    // Its input is a BatchNorm's: a modelled mean, so the bias correction forms W' too.
    bnBefore: { gamma: f(c, 0.2, 1.5), beta: f(c, -0.5, 0.8), mean: f(c, -1, 1), variance: f(c, 0.1, 3), epsilon: 1e-5 },
  });
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let q = 0; q < a.length; q++) scale = Math.max(scale, Math.abs(b[q]));
  for (let q = 0; q < a.length; q++) worst = Math.max(worst, Math.abs(a[q] - b[q]));
  return worst / Math.max(scale, 1e-30);
}

t.test('the variance and bias corrections of a layer wider than one block of W are those of the whole W', { skip: backends.length === 0 && 'no backend loads' }, async (t) => {
  const backend = backends[0];
  const ranks: Record<Method, number> = { dac: 4, spatial: 60, channel: 60 };
  let seed = 7;
  for (const method of ['dac', 'spatial', 'channel'] as const) {
    const layer = wideLayer(seed++);
    const convs = [layer];
    const { n, c, kh, kw } = layer;
    const K = kh * kw;
    const errorModel = { weighting: 'bn' as const, spatialCorrelation: FEATURE_CORRELATION, centred: true };
    // The factors the build will take (and scale in place), copied as they were.
    const set = errorModelSet(convs, errorModel, backend);
    const model = layerErrorModel(set, layer, false);
    t.ok(model.input.mean.some((m) => m !== 0), `${method}: the input has a mean (the bias correction runs)`);
    const f = factorLayers(set, [{ layer, method, rank: ranks[method] }], false, 1)[0];
    const [first, last] = [f.first.slice(), f.last.slice()];
    const [rep] = buildReplacements(convs, { layers: [{ name: layer.name, method, rank: ranks[method] }], errorModel }, backend);

    // The reference: W' whole, each output's gain and bias shift from it.
    const unscaled: LayerReplacement =
      method === 'dac'
        ? { method, name: layer.name, rank: ranks.dac, depthwise: first, pointwise: last, bias: null }
        : method === 'spatial'
          ? { method, name: layer.name, width: ranks.spatial, vertical: first, horizontal: last, bias: null }
          : { method, name: layer.name, width: ranks.channel, first, second: last, bias: null };
    const approx = reconstructWeights(unscaled, layer);
    const e0 = model.outputEnergy(layer.weights);
    const e1 = model.outputEnergy(approx);
    const gains = Array.from({ length: n }, (_, j) => (e1[j] > 0 ? Math.min(2, Math.max(0.5, Math.sqrt(e0[j] / e1[j]))) : 1));
    t.ok(gains.some((g) => Math.abs(g - 1) > 1e-3), `${method}: some output is rescaled`);
    const per = last.length / n;
    const wantLast = Float32Array.from(last, (v, q) => v * gains[Math.floor(q / per)]);
    const { mean, validH, validW } = model.input;
    const wantBias = Float64Array.from({ length: n }, (_, j) => {
      let shift = 0;
      for (let i = 0; i < c; i++)
        for (let y = 0; y < kh; y++)
          for (let x = 0; x < kw; x++) {
            const q = (j * c + i) * K + y * kw + x;
            shift += mean[i] * validH[y] * validW[x] * (layer.weights[q] - gains[j] * approx[q]);
          }
      return layer.bias![j] + shift;
    });
    const got = rep.method === 'dac' ? rep.pointwise : rep.method === 'spatial' ? rep.horizontal : rep.second;
    const gotFirst = rep.method === 'dac' ? rep.depthwise : rep.method === 'spatial' ? rep.vertical : rep.first;
    t.same(gotFirst, first, `${method}: the input stage as factored`);
    t.ok(maxRelDiff(got, wantLast) < 1e-5, `${method}: each output scaled by its gain (${maxRelDiff(got, wantLast)})`);
    t.ok(maxRelDiff(rep.bias!, wantBias) < 1e-4, `${method}: each bias shifted by its modelled mean (${maxRelDiff(rep.bias!, wantBias)})`);
  }
});
