// A conv layer for tests: stride 1, undilated, ungrouped, padded by 1 (a 3x3 'same' conv), no bias,
// no BatchNorm, ReLU; `fields` gives its name, sizes and weights and overrides any of the rest.
import type { ConvLayerInfo } from '../../src/model/types.js';

export function convLayer(fields: Pick<ConvLayerInfo, 'name' | 'n' | 'c' | 'kh' | 'kw' | 'inH' | 'inW' | 'outH' | 'outW' | 'weights'> & Partial<ConvLayerInfo>): ConvLayerInfo {
  return {
    index: 1,
    groups: 1,
    strides: [1, 1],
    dilations: [1, 1],
    pads: [1, 1, 1, 1],
    bias: null,
    activation: 'relu',
    bnAfter: null,
    bnBefore: null,
    skipReason: null,
    ...fields,
  };
}
