// Spatial and channel replacements are rebuilt with native GEMMs (src/plan/build.ts reconstruct),
// not a JS loop of n*w*c*kh*kw steps: the same results as the loop gave. The reference numbers
// below were produced by the JS loop on fashion-vgg (--rank 3 -> matching widths); the rebuilt
// weights feed the variance correction, so a wrong product (scaled, or factors mis-indexed)
// changes the relErrors.
import t from 'tap';
import { decomposeLoaded } from '../src/decompose-model.js';
import { loadModel } from '../src/formats/index.js';
import { demoModel } from './fixtures/util.js';

const reference = {
  spatial: [
    ['conv2d_1', 1, 0.727538238], ['conv2d_2', 13, 0.401979385], ['conv2d_3', 14, 0.496538063], ['conv2d_4', 21, 0.534843449],
    ['conv2d_5', 24, 0.539720449], ['conv2d_6', 37, 0.552198431], ['conv2d_7', 37, 0.576000857], ['conv2d_8', 46, 0.505328743],
    ['conv2d_9', 69, 0.517160633], ['conv2d_10', 69, 0.536120142], ['conv2d_11', 69, 0.544365623], ['conv2d_12', 69, 0.539249892],
    ['conv2d_13', 69, 0.51563185],
  ],
  channel: [
    ['conv2d_1', 3, 0.655685764], ['conv2d_2', 8, 0.53990066], ['conv2d_3', 11, 0.596183547], ['conv2d_4', 12, 0.637861717],
    ['conv2d_5', 20, 0.5879806], ['conv2d_6', 22, 0.62197416], ['conv2d_7', 22, 0.618204208], ['conv2d_8', 37, 0.560167378],
    ['conv2d_9', 41, 0.566685102], ['conv2d_10', 41, 0.568374885], ['conv2d_11', 41, 0.564901128], ['conv2d_12', 41, 0.553932376],
    ['conv2d_13', 41, 0.507623835],
  ],
} as const;

t.test('spatial and channel builds: the same layers, widths and errors as the reference', async (t) => {
  const model = await loadModel(demoModel);
  for (const method of ['spatial', 'channel'] as const) {
    const { report } = decomposeLoaded(model, { method, rank: 3 });
    const got = report.layers.map((l) => [l.name, l.rank, l.relError] as const);
    t.same(got.map(([n, r]) => [n, r]), reference[method].map(([n, r]) => [n, r]), `${method}: layers and widths`);
    const worst = Math.max(...got.map(([, , e], i) => Math.abs(e - reference[method][i][2]) / reference[method][i][2]));
    t.ok(worst < 1e-6, `${method}: relErrors within 1e-6 of the reference (worst ${worst.toExponential(2)})`);
  }
});
