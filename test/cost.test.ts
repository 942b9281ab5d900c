// Cost accounting against MACs and parameters counted by hand for small
// layers: stride 2, dilation 2, 'valid' and asymmetric 'same' padding, 5x5 and
// 1x7 kernels, groups; every replacement method, including the spatial first
// stage that runs at its own (vertically strided, horizontally full) size.
import t from 'tap';
import { convCost, matchingWidth, modelCost, replacementCost, type CostedConv } from '../src/cost.js';
import { DacError } from '../src/errors.js';
import { convOutputSize, maxRank, spatialIntermediateSize } from '../src/geometry.js';
import { matchingWidths } from '../src/index.js';

interface Geo {
  name?: string;
  n: number;
  c: number;
  kh: number;
  kw: number;
  inH: number;
  inW: number;
  strides?: [number, number];
  dilations?: [number, number];
  pads?: [number, number, number, number];
  groups?: number;
  bias?: boolean;
}

function conv(g: Geo): CostedConv {
  const strides = g.strides ?? [1, 1];
  const dilations = g.dilations ?? [1, 1];
  const pads = g.pads ?? [0, 0, 0, 0];
  return {
    name: g.name ?? 'conv',
    n: g.n,
    c: g.c,
    kh: g.kh,
    kw: g.kw,
    groups: g.groups ?? 1,
    strides,
    dilations,
    pads,
    inH: g.inH,
    inW: g.inW,
    outH: convOutputSize(g.inH, g.kh, strides[0], dilations[0], pads[0], pads[2]),
    outW: convOutputSize(g.inW, g.kw, strides[1], dilations[1], pads[1], pads[3]),
    bias: g.bias === false ? null : new Float32Array(g.n),
  };
}

t.test('3x3 stride 2, padding 1: 7x7 -> 4x4', async (t) => {
  const l = conv({ n: 8, c: 4, kh: 3, kw: 3, inH: 7, inW: 7, strides: [2, 2], pads: [1, 1, 1, 1] });
  t.equal(l.outH, 4);
  t.equal(l.outW, 4);
  t.same(convCost(l), { macs: 16 * 8 * 4 * 9, params: 8 * 4 * 9 + 8 });
  // DAC r=2: depthwise 16*(4*2)*9, pointwise 16*8*(4*2)
  t.same(replacementCost(l, 'dac', 2), { macs: 1152 + 1024, params: 4 * 2 * 9 + 8 * 8 + 8 });
  // spatial w=3: 3x1 stride (2,1) pad (1,0): 4 x 7 outputs of 3 filters over 4*3 inputs; then 1x3 stride (1,2) at 4x4
  t.same(spatialIntermediateSize(l), { h: 4, w: 7 });
  t.same(replacementCost(l, 'spatial', 3), { macs: 4 * 7 * 3 * 4 * 3 + 16 * 8 * 3 * 3, params: 3 * 4 * 3 + 8 * 3 * 3 + 8 });
  // channel w=3: 3x3 c->3 at 4x4, then 1x1 3->8
  t.same(replacementCost(l, 'channel', 3), { macs: 16 * 3 * 4 * 9 + 16 * 8 * 3, params: 3 * 4 * 9 + 8 * 3 + 8 });
});

t.test('dilation 2, valid padding: 9x11 -> 5x7, no bias', async (t) => {
  const l = conv({ n: 5, c: 3, kh: 3, kw: 3, inH: 9, inW: 11, dilations: [2, 2], bias: false });
  t.equal(l.outH, 5);
  t.equal(l.outW, 7);
  t.same(convCost(l), { macs: 35 * 5 * 3 * 9, params: 5 * 3 * 9 });
  t.same(replacementCost(l, 'dac', 1), { macs: 35 * 3 * 9 + 35 * 5 * 3, params: 3 * 9 + 5 * 3 });
  // vertical stage: dilation 2 along H only, so 5 x 11 outputs
  t.same(spatialIntermediateSize(l), { h: 5, w: 11 });
  t.same(replacementCost(l, 'spatial', 2), { macs: 5 * 11 * 2 * 3 * 3 + 35 * 5 * 2 * 3, params: 2 * 3 * 3 + 5 * 2 * 3 });
  t.same(replacementCost(l, 'channel', 4), { macs: 35 * 4 * 3 * 9 + 35 * 5 * 4, params: 4 * 3 * 9 + 5 * 4 });
});

t.test('5x5 stride 2 with asymmetric same padding (1 before, 2 after): 8x8 -> 4x4', async (t) => {
  const l = conv({ n: 4, c: 2, kh: 5, kw: 5, inH: 8, inW: 8, strides: [2, 2], pads: [1, 1, 2, 2] });
  t.equal(l.outH, 4);
  t.same(convCost(l), { macs: 16 * 4 * 2 * 25, params: 4 * 2 * 25 + 4 });
  t.equal(maxRank(l, 'dac'), 4);
  t.equal(maxRank(l, 'spatial'), 10);
  t.equal(maxRank(l, 'channel'), 4);
  t.same(replacementCost(l, 'dac', 3), { macs: 16 * 2 * 3 * 25 + 16 * 4 * 2 * 3, params: 2 * 3 * 25 + 4 * 6 + 4 });
  t.same(replacementCost(l, 'spatial', 3), { macs: 4 * 8 * 3 * 2 * 5 + 16 * 4 * 3 * 5, params: 3 * 2 * 5 + 4 * 3 * 5 + 4 });
});

t.test('1x7 kernel: the vertical stage is a 1x1, the horizontal one does the work', async (t) => {
  const l = conv({ n: 6, c: 4, kh: 1, kw: 7, inH: 5, inW: 10, pads: [0, 3, 0, 3] });
  t.equal(l.outH, 5);
  t.equal(l.outW, 10);
  t.same(convCost(l), { macs: 50 * 6 * 4 * 7, params: 6 * 4 * 7 + 6 });
  t.equal(maxRank(l, 'dac'), 6);
  t.equal(maxRank(l, 'spatial'), 4);
  t.equal(maxRank(l, 'channel'), 6);
  t.same(replacementCost(l, 'dac', 2), { macs: 50 * 4 * 2 * 7 + 50 * 6 * 8, params: 4 * 2 * 7 + 6 * 8 + 6 });
  t.same(replacementCost(l, 'spatial', 2), { macs: 50 * 2 * 4 + 50 * 6 * 2 * 7, params: 2 * 4 + 6 * 2 * 7 + 6 });
  t.same(replacementCost(l, 'channel', 2), { macs: 50 * 2 * 4 * 7 + 50 * 6 * 2, params: 2 * 4 * 7 + 6 * 2 + 6 });
  // matching width per pixel: DAC r*c*(kh*kw+n) = 2*4*13 = 104; spatial w*(c*kh + n*kw) = 46w; channel w*(c*kh*kw + n) = 34w
  t.equal(matchingWidth(l, 'spatial', 2), 2);
  t.equal(matchingWidth(l, 'channel', 2), 3);
});

t.test('the public matchingWidths uses the true spatial cost c*kh + n*kw (1x7 and 7x1)', async (t) => {
  // DAC rank 2 with n=6, c=4, 7 taps: 2*4*(7+6) = 104 MACs per pixel.
  // 1x7: spatial w*(4*1 + 6*7) = 46w -> 2 (c*kw + n*kh = 34 would give 3); 7x1: w*(4*7 + 6*1) = 34w -> 3.
  t.same(matchingWidths({ n: 6, c: 4, kh: 1, kw: 7 }, 2), { channel: 3, spatial: 2 });
  t.same(matchingWidths({ n: 6, c: 4, kh: 7, kw: 1 }, 2), { channel: 3, spatial: 3 });
  for (const shape of [
    { n: 6, c: 4, kh: 1, kw: 7 },
    { n: 6, c: 4, kh: 7, kw: 1 },
    { n: 16, c: 8, kh: 3, kw: 3 },
    { n: 2, c: 1, kh: 3, kw: 3 },
  ]) {
    for (let r = 1; r <= shape.kh * shape.kw; r++) {
      t.same(matchingWidths(shape, r), { channel: matchingWidth(shape, 'channel', r), spatial: matchingWidth(shape, 'spatial', r) });
    }
  }
  t.throws(() => matchingWidths({ n: 6, c: 4, kh: 1, kw: 7 }, 0), /rank/);
});

t.test('groups: the conv counts c/groups inputs per filter; replacements need groups = 1', async (t) => {
  const l = conv({ n: 8, c: 4, kh: 3, kw: 3, inH: 6, inW: 6, pads: [1, 1, 1, 1], groups: 2 });
  t.same(convCost(l), { macs: 36 * 8 * 2 * 9, params: 8 * 2 * 9 + 8 });
  for (const m of ['dac', 'spatial', 'channel'] as const) {
    t.throws(() => replacementCost(l, m, 1), DacError, m);
  }
  t.throws(() => convCost({ ...l, groups: 3 }), /groups 3 must divide/);
});

t.test('matching widths of the paper for a square kernel', async (t) => {
  const l = conv({ n: 16, c: 16, kh: 3, kw: 3, inH: 8, inW: 8, pads: [1, 1, 1, 1] });
  // channel: 2*16*25 / (16*9 + 16) = 5; spatial: 800 / (48 + 48) = 8.33 -> 8
  t.equal(matchingWidth(l, 'channel', 2), 5);
  t.equal(matchingWidth(l, 'spatial', 2), 8);
  t.equal(matchingWidth(l, 'dac', 2), 2);
  // clamped to the method's range
  t.equal(matchingWidth(l, 'channel', 9), 16);
  t.equal(matchingWidth({ n: 2, c: 1, kh: 3, kw: 3 }, 'spatial', 9), 3);
});

t.test('rank/width range and bad shapes are rejected with the layer named', async (t) => {
  const l = conv({ name: 'block1', n: 4, c: 3, kh: 3, kw: 3, inH: 5, inW: 5 });
  t.throws(() => replacementCost(l, 'dac', 0), { name: 'DacError', message: /block1.*rank.*1\.\.4/ });
  t.throws(() => replacementCost(l, 'dac', 5), /1\.\.4/);
  t.throws(() => replacementCost(l, 'spatial', 10), /width/);
  t.throws(() => replacementCost(l, 'channel', 2.5), /integer/);
  t.throws(() => convCost({ ...l, outH: 0 }), /outH/);
});

t.test('model totals: convs (as planned) plus everything else', async (t) => {
  const a = conv({ name: 'a', n: 8, c: 4, kh: 3, kw: 3, inH: 7, inW: 7, strides: [2, 2], pads: [1, 1, 1, 1] });
  const b = conv({ name: 'b', n: 5, c: 3, kh: 3, kw: 3, inH: 9, inW: 11, dilations: [2, 2], bias: false });
  const other = { macs: 1000, params: 77 };
  const plain = modelCost([a, b], other);
  t.same(plain.total, { macs: 4608 + 4725 + 1000, params: 296 + 135 + 77 });
  const planned = modelCost([a, b], other, {
    layers: [
      { name: 'a', method: 'dac', rank: 2 },
      { name: 'b', method: 'keep', rank: 0 },
    ],
  });
  t.same(planned.convs, { macs: 2176 + 4725, params: 144 + 135 });
  t.same(planned.total, { macs: 2176 + 4725 + 1000, params: 144 + 135 + 77 });
  t.throws(() => modelCost([a], other, { layers: [{ name: 'zz', method: 'dac', rank: 1 }] }), /not a conv/);
  // b has no bias; bias correction gives its replacement one, and the count includes it.
  const withBias = modelCost([a, b], other, { layers: [{ name: 'b', method: 'dac', rank: 2, biasAdded: true }] });
  const without = modelCost([a, b], other, { layers: [{ name: 'b', method: 'dac', rank: 2 }] });
  t.equal(withBias.total.params - without.total.params, 5, 'an added bias counts n parameters');
  t.equal(withBias.total.macs, without.total.macs, 'and no MACs');
  t.equal(replacementCost(b, 'spatial', 3, true).params, replacementCost(b, 'spatial', 3).params + 5);
  t.equal(replacementCost(a, 'dac', 2, true).params, replacementCost(a, 'dac', 2).params, 'a layer with a bias already counts it');
});
