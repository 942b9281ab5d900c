// `dac inspect`: what each conv costs and how much of its spectral energy
// DAC keeps at each rank, so a user can see where decomposing pays off.
import { convCost, replacementCost } from '../cost.js';
import { loadModel, type LoadedModel } from '../formats/index.js';
import { getBackend } from '../index.js';
import type { ConvLayerInfo } from '../model/types.js';
import { fmtInt, parse, UsageError, type Options } from './common.js';

export const inspectOptions: Options = {
  json: { type: 'boolean' },
  'fold-bn': { type: 'boolean' },
};

export const inspectHelp = `Usage: dac inspect <model> [--json] [--fold-bn]

Lists every 2-D convolution of a TF.js Layers model (folder or model.json) or
an ONNX model (.onnx): kernel, stride, channels in -> out, output size, MACs
and parameters (one image), the fraction of spectral energy DAC keeps at
ranks 1..kh*kw (from each input channel's singular values), the largest DAC
rank that still saves MACs, and why a layer cannot be decomposed, if so.

Options:
  --json      machine-readable output (one JSON object on stdout)
  --fold-bn   fold BatchNormalization into the preceding convs first
  -h, --help  this help
`;

export interface LayerInspection {
  name: string;
  index: number;
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  groups: number;
  in: number;
  out: number;
  inputSize: [number, number];
  outputSize: [number, number];
  macs: number;
  params: number;
  /** energy[r-1]: fraction of sum(sigma^2) kept by DAC at rank r, r = 1..kh*kw (empty when not decomposable). */
  energy: number[];
  /** Largest DAC rank whose replacement has fewer MACs than the conv (0: none). */
  maxSavingRank: number;
  canSaveFlops: boolean;
  batchNormAfter: boolean;
  skipReason: string | null;
}

export interface Inspection {
  model: string;
  format: string;
  inputShape: number[];
  convs: LayerInspection[];
  totals: { macs: number; params: number; convMacs: number; convParams: number; otherMacs: number; otherParams: number };
}

function energyCurve(layer: ConvLayerInfo): number[] {
  const { n, c, kh, kw } = layer;
  const k = kh * kw;
  const { singular } = getBackend().decomposeDac(layer.weights, { n, c, kh, kw }, 1, { context: { layer: layer.name } });
  const m = Math.min(n, k);
  const perRank = new Float64Array(k);
  let total = 0;
  for (let i = 0; i < c; i++)
    for (let j = 0; j < m; j++) {
      const s2 = singular[i * m + j] ** 2;
      perRank[j] += s2;
      total += s2;
    }
  const out: number[] = [];
  let acc = 0;
  for (let r = 0; r < k; r++) {
    acc += perRank[r];
    out.push(total > 0 ? Math.min(1, acc / total) : 1);
  }
  return out;
}

export function inspectModel(model: LoadedModel): Inspection {
  const convs = model.convs.map((layer): LayerInspection => {
    const cost = convCost(layer);
    let maxSavingRank = 0;
    let energy: number[] = [];
    if (!layer.skipReason) {
      energy = energyCurve(layer);
      for (let r = 1; r <= Math.min(layer.n, layer.kh * layer.kw); r++) {
        if (replacementCost(layer, 'dac', r).macs < cost.macs) maxSavingRank = r;
      }
    }
    return {
      name: layer.name,
      index: layer.index,
      kernel: [layer.kh, layer.kw],
      strides: layer.strides,
      dilations: layer.dilations,
      groups: layer.groups,
      in: layer.c,
      out: layer.n,
      inputSize: [layer.inH, layer.inW],
      outputSize: [layer.outH, layer.outW],
      macs: cost.macs,
      params: cost.params,
      energy,
      maxSavingRank,
      canSaveFlops: maxSavingRank > 0,
      batchNormAfter: layer.bnAfter !== null,
      skipReason: layer.skipReason,
    };
  });
  const convMacs = convs.reduce((a, c) => a + c.macs, 0);
  const convParams = convs.reduce((a, c) => a + c.params, 0);
  return {
    model: model.path,
    format: model.format,
    inputShape: model.inputShape,
    convs,
    totals: {
      macs: convMacs + model.other.macs,
      params: convParams + model.other.params,
      convMacs,
      convParams,
      otherMacs: model.other.macs,
      otherParams: model.other.params,
    },
  };
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

export function formatInspection(ins: Inspection): string {
  const rows = [['#', 'name', 'kernel', 'stride', 'c -> n', 'output', 'MACs', 'params', 'saves', 'DAC energy kept at rank 1..k']];
  for (const c of ins.convs) {
    rows.push([
      String(c.index),
      c.name,
      `${c.kernel[0]}x${c.kernel[1]}${c.groups > 1 ? `/g${c.groups}` : ''}`,
      `${c.strides[0]}x${c.strides[1]}`,
      `${c.in} -> ${c.out}`,
      `${c.outputSize[0]}x${c.outputSize[1]}`,
      fmtInt(c.macs),
      fmtInt(c.params),
      c.skipReason ? 'no' : c.canSaveFlops ? `r<=${c.maxSavingRank}` : 'no',
      c.skipReason ? `(${c.skipReason})` : c.energy.map((e) => e.toFixed(3)).join(' '),
    ]);
  }
  const t = ins.totals;
  return [
    `model ${ins.model} (${ins.format}), input ${ins.inputShape.join('x')} (HxWxC), ${ins.convs.length} convs`,
    table(rows),
    `total: ${fmtInt(t.macs)} MACs (convs ${fmtInt(t.convMacs)}, other ${fmtInt(t.otherMacs)}), ` +
      `${fmtInt(t.params)} params (convs ${fmtInt(t.convParams)}, other ${fmtInt(t.otherParams)})`,
  ].join('\n');
}

export async function runInspect(args: string[]): Promise<number> {
  const { values, positionals } = parse('inspect', args, inspectOptions);
  if (values.help) {
    process.stdout.write(inspectHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('inspect takes exactly one model path', 'inspect');
  let model = await loadModel(positionals[0]);
  if (values['fold-bn']) model = model.foldBatchNorm();
  const ins = inspectModel(model);
  process.stdout.write(values.json ? `${JSON.stringify(ins, null, 2)}\n` : `${formatInspection(ins)}\n`);
  return 0;
}
