// `dac inspect`: what each conv costs and how much of its spectral energy
// DAC keeps at each rank, so a user can see where decomposing pays off; with
// a policy (--flops-saved, --energy, ...), the plan `dac decompose` would
// apply with the same flags, before anything is written.
import { convCost, replacementCost } from '../cost.js';
import { DacError } from '../errors.js';
import { loadModel, type LoadedModel } from '../formats/index.js';
import { maxRank } from '../geometry.js';
import { getBackend } from '../index.js';
import type { ConvLayerInfo } from '../model/types.js';
import { planModel, planOptionsFrom, type ModelPlan } from '../plan/index.js';
import { fmtInt, fmtPct, fmtSaving, parse, UsageError, type Options } from './common.js';
import { latencyFlags, latencyFlagsHelp, withLatency } from './bench.js';
import { inputShapeFlag, inputShapeFrom, planFlags, settingsFrom } from './settings.js';

export const inspectOptions: Options = {
  json: { type: 'boolean' },
  'fold-bn': { type: 'boolean' },
  ...inputShapeFlag,
  ...planFlags,
  ...latencyFlags,
};

export const inspectHelp = `Usage: dac-conv inspect <model> [--json] [--fold-bn] [policy [planning options]]

Lists every 2-D convolution of a TF.js Layers model (folder or model.json) or
an ONNX model (.onnx): kernel, stride, channels in -> out, output size, MACs
and parameters (one image), the fraction of spectral energy DAC keeps at
ranks 1..kh*kw (from each input channel's singular values), the largest DAC
rank that still saves MACs, and why a layer cannot be decomposed, if so.

With a policy, also prints the plan dac-conv decompose would apply with the same
flags (nothing is written): per conv the method, rank or width, MACs before
and after, the predicted relative error of its output and why it is kept;
then the totals. See dac-conv decompose --help for what each flag means.

Options:
  --json                 machine-readable output (one JSON object on stdout; the plan under "plan")
  --fold-bn              fold BatchNormalization into the preceding convs first
  --input-shape HxW[xC]  input size for a model that leaves height/width free;
                         without it, costs of such a model are per input pixel
  -h, --help             this help

Policy (at most one; as in dac decompose):
  -r, --rank N           DAC rank N in every layer (spatial/channel: the width of the same cost)
  --ranks a=3,b=4|F.json per-layer rank or width; unnamed layers are kept
  --energy E             per layer the smallest rank keeping predicted energy >= E (0..1]
  --flops-saved F        save at least fraction F of the model's MACs (e.g. 0.5 or 50%)
  --params-saved F       save at least fraction F of the parameters

Planning options:
  -m, --method M         dac (default), spatial, channel or auto
  --skip-first           keep the first conv
  --layers a,b           plan only these convs
  --weighting bn|plain   planning error model (default bn; plain for a model with no
                         BatchNorm statistics, e.g. BN folded into the convs)
  --depth-penalty X      budget policies: how much more early-layer errors cost (>= 0, default 0)
  --paper                the decompositions exactly as published: plain SVDs (DAC: per input
                         channel, pointwise = U_r S_r), original bias, no refit or corrections;
                         planned on the plain weight error; report.json says mode "paper"

${latencyFlagsHelp}`;

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
  /** The [H, W, C] the costs are counted at (with freeInput: the nominal size standing in for free sizes). */
  inputShape: number[];
  /** The model leaves its input height/width free and none was stated: read macsPerInputPixel. */
  freeInput: boolean;
  convs: LayerInspection[];
  totals: {
    macs: number;
    params: number;
    convMacs: number;
    convParams: number;
    otherMacs: number;
    otherParams: number;
    /** With freeInput: MACs per input pixel (macs / (H*W)), the same at every input size. */
    macsPerInputPixel?: number;
  };
  /** The plan for the policy given, if one was. */
  plan?: ModelPlan;
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
      for (let r = 1; r <= maxRank(layer, 'dac'); r++) {
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
  const macs = convMacs + model.other.macs;
  return {
    model: model.path,
    format: model.format,
    inputShape: model.inputShape,
    freeInput: model.freeInput,
    convs,
    totals: {
      macs,
      params: convParams + model.other.params,
      convMacs,
      convParams,
      otherMacs: model.other.macs,
      otherParams: model.other.params,
      ...(model.freeInput ? { macsPerInputPixel: macs / (model.inputShape[0] * model.inputShape[1]) } : {}),
    },
  };
}

/** MACs as printed: per image, or per input pixel (to 2 decimals) for a model with free input sizes. */
function macsFormatter(ins: Pick<Inspection, 'freeInput' | 'inputShape'>): (macs: number) => string {
  if (!ins.freeInput) return fmtInt;
  const pixels = ins.inputShape[0] * ins.inputShape[1];
  return (macs) => (macs / pixels).toLocaleString('en-US', { maximumFractionDigits: 2 });
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

export function formatInspection(ins: Inspection): string {
  const fmtMacs = macsFormatter(ins);
  const rows = [['#', 'name', 'kernel', 'stride', 'c -> n', 'output', ins.freeInput ? 'MACs/px' : 'MACs', 'params', 'saves', 'DAC energy kept at rank 1..k']];
  for (const c of ins.convs) {
    rows.push([
      String(c.index),
      c.name,
      `${c.kernel[0]}x${c.kernel[1]}${c.groups > 1 ? `/g${c.groups}` : ''}`,
      `${c.strides[0]}x${c.strides[1]}`,
      `${c.in} -> ${c.out}`,
      `${c.outputSize[0]}x${c.outputSize[1]}`,
      fmtMacs(c.macs),
      fmtInt(c.params),
      c.skipReason ? 'no' : c.canSaveFlops ? `r<=${c.maxSavingRank}` : 'no',
      c.skipReason ? `(${c.skipReason})` : c.energy.map((e) => e.toFixed(3)).join(' '),
    ]);
  }
  const t = ins.totals;
  const input = ins.freeInput
    ? `input free: HxWx${ins.inputShape[2]} (shapes at ${ins.inputShape[0]}x${ins.inputShape[1]}; MACs per input pixel, the same at every size; --input-shape for one size)`
    : `input ${ins.inputShape.join('x')} (HxWxC)`;
  return [
    `model ${ins.model} (${ins.format}), ${input}, ${ins.convs.length} convs`,
    table(rows),
    `total: ${fmtMacs(t.macs)} MACs${ins.freeInput ? ' per input pixel' : ''} (convs ${fmtMacs(t.convMacs)}, other ${fmtMacs(t.otherMacs)}), ` +
      `${fmtInt(t.params)} params (convs ${fmtInt(t.convParams)}, other ${fmtInt(t.otherParams)})`,
  ].join('\n');
}

/** The plan as a table: one row per conv, then the totals; MACs per input pixel for a model with free input sizes. */
export function formatPlan(plan: ModelPlan, input: Pick<Inspection, 'freeInput' | 'inputShape'> = { freeInput: false, inputShape: [] }): string {
  const fmtMacs = macsFormatter(input);
  const unit = input.freeInput ? ' per input pixel' : '';
  const rows = [['name', 'method', 'rank', `MACs before${input.freeInput ? '/px' : ''}`, `MACs after${input.freeInput ? '/px' : ''}`, 'saved', 'predicted error', 'note']];
  for (const l of plan.layers) {
    const kept = l.method === 'keep';
    rows.push([
      l.name,
      l.method,
      kept ? '-' : String(l.rank),
      fmtMacs(l.macsBefore),
      fmtMacs(l.macsAfter),
      kept ? '-' : fmtPct(1 - l.macsAfter / l.macsBefore),
      kept ? '-' : l.predictedError.toFixed(4),
      l.reason ?? '',
    ]);
  }
  const { flops, params, errorModel } = plan;
  const changed = plan.layers.filter((l) => l.method !== 'keep').length;
  return [
    `plan (method ${plan.method}, weighting ${errorModel.weighting}${plan.mode === 'paper' ? ', paper decompositions' : ''}): ${changed} of ${plan.layers.length} convs replaced`,
    table(rows),
    `total: MACs${unit} ${fmtMacs(flops.before)} -> ${fmtMacs(flops.after)} (${fmtSaving(flops.before, flops.after)}), ` +
      `params ${fmtInt(params.before)} -> ${fmtInt(params.after)} (${fmtSaving(params.before, params.after)}), ` +
      `predicted loss ${plan.predictedLoss.toFixed(4)}`,
  ].join('\n');
}

export async function runInspect(args: string[]): Promise<number> {
  const { values, positionals } = parse('inspect', args, inspectOptions);
  if (values.help) {
    process.stdout.write(inspectHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('inspect takes exactly one model path', 'inspect');
  // Any planning flag asks for a plan, and then a policy is required (as for decompose).
  let settings = [...Object.keys(planFlags), 'latency-saved'].some((f) => values[f] !== undefined) ? settingsFrom(values, 'inspect') : null;
  let model = await loadModel(positionals[0], { inputShape: inputShapeFrom(values, 'inspect') });
  if (values['fold-bn']) model = model.foldBatchNorm();
  if (settings) settings = await withLatency(settings, values, model, model.format === 'onnx' ? 'ort' : 'tfjs', 'inspect');
  const backend = getBackend();
  const ins = inspectModel(model);
  if (settings) {
    try {
      ins.plan = planModel(model.convs, model.other, planOptionsFrom(settings), backend);
    } catch (err) {
      // The planner names the layer and field; the model is named here.
      if (err instanceof DacError && !err.context.model) throw new DacError(err.code, err.message, { model: positionals[0] });
      throw err;
    }
  }
  const text = ins.plan ? `${formatInspection(ins)}\n\n${formatPlan(ins.plan, ins)}` : formatInspection(ins);
  process.stdout.write(values.json ? `${JSON.stringify(ins, null, 2)}\n` : `${text}\n`);
  return 0;
}
