// The policy and method flags `dac decompose`, `dac zoo`, `dac inspect`,
// `dac bench` and `dac demo` share, turned into decomposition settings. This
// converts strings; which combinations make a policy is the planner's rule
// (policyProblem in src/plan/index.ts), worded here in flag spelling.
import type { ModelSettings } from '../decompose-model.js';
import type { TfjsLayerKind } from '../formats/index.js';
import { MB } from '../io/limits.js';
import { PLAN_METHODS, policyProblem, type PolicyProblem } from '../plan/index.js';
import { floatOption, fractionOption, intOption, listOption, ranksOption, UsageError, type Options } from './common.js';

/** The planning flags, spelled as `dac decompose` spells them. */
export const planFlags: Options = {
  method: { type: 'string', short: 'm' },
  rank: { type: 'string', short: 'r' },
  ranks: { type: 'string' },
  energy: { type: 'string' },
  'flops-saved': { type: 'string' },
  'params-saved': { type: 'string' },
  'skip-first': { type: 'boolean' },
  layers: { type: 'string' },
  weighting: { type: 'string' },
  'depth-penalty': { type: 'string' },
  paper: { type: 'boolean' },
};

/** The planner's policy rules, in the words of the flags. */
const POLICY_PROBLEMS: Record<PolicyProblem, string> = {
  'no-policy': 'give a policy: --rank, --ranks, --energy, --flops-saved, --params-saved or --latency-saved',
  'several-policies': 'give only one policy: --rank/--ranks, --energy, or --flops-saved/--params-saved/--latency-saved',
  'auto-with-ranks': '--method auto picks ranks itself: use --flops-saved, --params-saved or --energy',
  'latency-and-budget': 'give --latency-saved or --flops-saved/--params-saved, not both',
  'paper-weighted': '--paper decomposes the plain weights: drop --weighting bn',
  'paper-corrected': '--paper keeps the original bias: drop the bias correction',
};

/**
 * Settings from parsed flags; `command` names the command in usage errors.
 * Flags not given are absent keys (not undefined ones): the zoo hashes the
 * settings into its resume markers, so equal settings must be equal objects.
 */
export function settingsFrom(values: Record<string, string | boolean | undefined>, command: string): ModelSettings {
  const method = (values.method as string | undefined) ?? 'dac';
  if (!(PLAN_METHODS as readonly string[]).includes(method)) {
    throw new UsageError(`--method must be ${PLAN_METHODS.slice(0, -1).join(', ')} or ${PLAN_METHODS.at(-1)}, got '${method}'`, command);
  }
  const weighting = values.weighting as string | undefined;
  if (weighting !== undefined && weighting !== 'bn' && weighting !== 'plain') {
    throw new UsageError(`--weighting must be bn or plain, got '${weighting}'`, command);
  }
  const s: ModelSettings = {
    method: method as ModelSettings['method'],
    rank: intOption(values.rank, '--rank', 0),
    ranks: ranksOption(values.ranks),
    energy: fractionOption(values.energy, '--energy', true),
    flopsSaved: fractionOption(values['flops-saved'], '--flops-saved', false),
    paramsSaved: fractionOption(values['params-saved'], '--params-saved', false),
    latencySaved: fractionOption(values['latency-saved'], '--latency-saved', false),
    skipFirst: values['skip-first'] === true || undefined,
    layers: listOption(values.layers, '--layers'),
    weighting: weighting as ModelSettings['weighting'],
    depthPenalty: floatOption(values['depth-penalty'], '--depth-penalty'),
    paper: values.paper === true || undefined,
    biasCorrection: values['no-bias-correction'] === true ? false : undefined,
    threads: intOption(values.threads, '--threads', 1, 1024),
    foldBn: values['fold-bn'] === true || undefined,
    inputShape: inputShapeFrom(values, command),
  };
  if (s.rank === 0) throw new UsageError('--rank must be at least 1, got 0', command);
  if (s.depthPenalty !== undefined && s.depthPenalty < 0) throw new UsageError('--depth-penalty must be >= 0', command);
  const problem = policyProblem(s);
  if (problem) throw new UsageError(POLICY_PROBLEMS[problem], command);
  // The API lets --ranks override a uniform rank (unnamed layers get it); the flags are alternatives.
  if (s.rank !== undefined && s.ranks !== undefined) throw new UsageError('give --rank or --ranks, not both', command);
  for (const k of Object.keys(s) as (keyof ModelSettings)[]) if (s[k] === undefined) delete s[k];
  return s;
}

/** --input-shape: fixes the input sizes a model leaves free (LoadOptions.inputShape). */
export const inputShapeFlag: Options = { 'input-shape': { type: 'string' } };

/** --input-shape HxW or HxWxC as [H, W] or [H, W, C] (undefined: not given). */
export function inputShapeFrom(values: Record<string, string | boolean | undefined>, command: string): number[] | undefined {
  const v = values['input-shape'];
  if (v === undefined) return undefined;
  const dims = String(v).split(/x/i).map((d) => (/^\d+$/.test(d.trim()) ? Number(d.trim()) : NaN));
  if ((dims.length !== 2 && dims.length !== 3) || !dims.every((d) => Number.isSafeInteger(d) && d >= 1)) {
    throw new UsageError(`--input-shape must be HxW or HxWxC with positive integers, got '${String(v)}'`, command);
  }
  return dims;
}

/** --max-model-mb as a byte limit for loadModel (undefined: its default). */
export function maxModelBytesFrom(values: Record<string, string | boolean | undefined>, command: string): number | undefined {
  const mb = floatOption(values['max-model-mb'], '--max-model-mb');
  if (mb === undefined) return undefined;
  if (!(mb > 0) || !Number.isFinite(mb)) throw new UsageError('--max-model-mb must be a number > 0', command);
  return mb * MB;
}

/** --tfjs-layer: how DAC replacements are written into TF.js Layers models (undefined: not given). */
export function tfjsLayerFrom(values: Record<string, string | boolean | undefined>, command: string): TfjsLayerKind | undefined {
  const v = values['tfjs-layer'];
  if (v === undefined) return undefined;
  if (v !== 'stock' && v !== 'dac') throw new UsageError(`--tfjs-layer must be stock or dac, got '${String(v)}'`, command);
  return v;
}
