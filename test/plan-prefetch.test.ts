// Planning on several threads (LayerErrorModel.prefetchCurves: spectra of
// layers with Gram matrices of one order solved together, batches waiting
// for a partner from later layers, a lone one left at the end) gives the
// plan that one thread gives, bit for bit, on every backend.
import t from 'tap';
import { availableBackends } from '../src/index.js';
import { planModel, type ModelPlan } from '../src/plan/index.js';
import type { BatchNormParams, ConvLayerInfo } from '../src/model/types.js';
import { mulberry32 } from '../src/random.js';
import { convLayer } from './helpers/conv-layer.js';

/**
 * A VGG-like chain of 3x3 convs, each followed by a BatchNorm the next reads. Widths chosen so that orders
 * repeat within and across shapes: the 8->16 conv's channel Gram (16) has the order of the 16->16 convs',
 * its spatial one (24) its own; five 16->16 convs leave a lone batch on two threads, two on three.
 */
function chain(seed: number): ConvLayerInfo[] {
  const rand = mulberry32(seed);
  const floats = (length: number, lo: number, hi: number) => Float32Array.from({ length }, () => lo + (hi - lo) * rand());
  const bn = (n: number): BatchNormParams => ({
    gamma: floats(n, 0.2, 1.5),
    beta: floats(n, -0.5, 0.8),
    mean: floats(n, -1, 1),
    variance: floats(n, 0.1, 3),
    epsilon: 1e-5,
  });
  const widths = [3, 8, 8, 16, 16, 16, 16, 16, 16];
  const convs: ConvLayerInfo[] = [];
  let bnBefore: BatchNormParams | null = null;
  for (let index = 0; index + 1 < widths.length; index++) {
    const c = widths[index];
    const n = widths[index + 1];
    const bnAfter = bn(n);
    convs.push(
      convLayer({
        name: `conv${index}`, index, n, c, kh: 3, kw: 3, inH: 10, inW: 10, outH: 10, outW: 10,
        weights: floats(n * c * 9, -1, 1), bias: floats(n, -0.5, 0.5), activation: 'linear', bnAfter, bnBefore,
      }),
    );
    bnBefore = bnAfter;
  }
  return convs;
}

const backends = availableBackends();

t.test('auto plans on 2 and 3 threads = on 1 thread, bit for bit (every backend)', { skip: backends.length === 0 && 'no backend loads' }, async (t) => {
  const other = { macs: 1000, params: 100 };
  for (const backend of backends) {
    for (const weighting of ['plain', 'bn'] as const) {
      // A fresh conv list per plan: error models are cached per list, and the curves must be made each time.
      const plan = (threads: number): ModelPlan => planModel(chain(3), other, { method: 'auto', flopsSaved: 0.5, weighting }, backend, threads);
      const one = plan(1);
      t.ok(one.layers.some((l) => l.method !== 'keep'), `${backend.name} ${weighting}: something is decomposed`);
      for (const threads of [2, 3]) t.same(plan(threads), one, `${backend.name} ${weighting}: ${threads} threads`);
    }
  }
});
