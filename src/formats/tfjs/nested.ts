// Keras models nested inside a model (a pretrained Sequential or Functional
// backbone called as one layer of another: the usual transfer-learning shape)
// flattened into one Functional model, so every conv is a layer of the outer
// graph: the nested model's layers take its place, wired to the tensor it was
// called on, and whatever read its output reads its last layer. Layers whose
// names clash get unique ones (`<nested>_<name>`), and their weights follow.
// The written model is the flat one: the same function, loadable anywhere.
import { DacError, type ErrorContext } from '../../errors.js';
import { uniqueName } from '../model.js';
import type { WeightEntry } from './manifest.js';
import { layerName, modelConfigOf, type LayerJson } from './topology.js';

const MODEL_CLASSES = new Set(['Sequential', 'Functional', 'Model']);

type RawRef = [string, number, number, Record<string, unknown>?];

function fail(msg: string, ctx: ErrorContext): never {
  throw new DacError('EFORMAT', msg, ctx);
}

function layersOf(mc: Record<string, unknown>): LayerJson[] {
  const config = mc.config as Record<string, unknown> | LayerJson[] | undefined;
  const layers = Array.isArray(config) ? config : (config?.layers as LayerJson[] | undefined);
  return Array.isArray(layers) ? layers : [];
}

function hasNested(mc: Record<string, unknown>): boolean {
  return layersOf(mc).some((l) => l && typeof l === 'object' && MODEL_CLASSES.has(l.class_name));
}

/** The shape a Sequential model declares on its first layer (or its first nested model's). */
function sequentialInputShape(layers: LayerJson[], ctx: ErrorContext): unknown[] {
  const first = layers[0];
  const shape = first?.config?.batch_input_shape ?? first?.config?.batch_shape;
  if (Array.isArray(shape)) return shape;
  if (first && MODEL_CLASSES.has(first.class_name)) {
    const inner = { class_name: first.class_name, config: first.config };
    const f = asFunctional(inner, ctx);
    const inName = (f.config.input_layers as RawRef[])[0][0];
    const input = (f.config.layers as LayerJson[]).find((l) => layerName(l) === inName);
    const s = input?.config.batch_input_shape ?? input?.config.batch_shape;
    if (Array.isArray(s)) return s;
  }
  return fail('a Sequential model needs an input shape on its first layer (batch_input_shape)', { ...ctx, field: 'batch_input_shape' });
}

/** A Sequential config rewritten as the equivalent Functional one (an InputLayer, then a chain). */
function asFunctional(mc: { class_name: string; config: unknown }, ctx: ErrorContext): { class_name: string; config: Record<string, unknown> } {
  if (mc.class_name !== 'Sequential') return mc as { class_name: string; config: Record<string, unknown> };
  const layers = layersOf(mc as Record<string, unknown>).map((l) => JSON.parse(JSON.stringify(l)) as LayerJson);
  if (layers.length === 0) fail('a nested Sequential model has no layers', ctx);
  const config = (Array.isArray(mc.config) ? {} : (mc.config as Record<string, unknown>)) ?? {};
  const taken = new Set(layers.map(layerName));
  const out: LayerJson[] = [];
  let prev: string;
  if (layers[0].class_name === 'InputLayer') {
    const input = layers.shift()!;
    prev = layerName(input);
    out.push({ ...input, name: prev, inbound_nodes: [] });
  } else {
    prev = uniqueName(`${String(config.name ?? 'sequential')}_input`, taken);
    out.push({
      class_name: 'InputLayer',
      name: prev,
      config: { batch_input_shape: sequentialInputShape(layers, ctx), dtype: 'float32', sparse: false, name: prev },
      inbound_nodes: [],
    });
  }
  for (const l of layers) {
    const name = layerName(l);
    // Nested models count their own construction as node 0 when they declare an input.
    out.push({ ...l, name, inbound_nodes: [[[prev, 0, 0, {}]]] });
    prev = name;
  }
  return {
    class_name: 'Functional',
    config: { ...config, layers: out, input_layers: [[out[0].name, 0, 0]], output_layers: [[prev, 0, 0]] },
  };
}

/** One inbound tensor reference, for rewiring (the parser checks them properly later). */
function isRef(r: unknown): r is RawRef {
  return Array.isArray(r) && typeof r[0] === 'string';
}

interface Flat {
  config: Record<string, unknown>;
  /** [nested model, layer name inside it, name in the flat model] for every layer taken out of a nested model. */
  moved: [string, string, string][];
}

/** A Functional config with every nested model inlined (recursively). */
function flatten(mc: { class_name: string; config: Record<string, unknown> }, ctx: ErrorContext, taken: Set<string>): Flat {
  const f = asFunctional(mc, ctx);
  const config = f.config;
  const layers = layersOf(f as Record<string, unknown>);
  const out: LayerJson[] = [];
  const moved: [string, string, string][] = [];
  // Outer references to a nested model, by its name: the flat tensor that replaces its output.
  const outputOf = new Map<string, RawRef>();
  for (const l of layers) {
    if (!MODEL_CLASSES.has(l.class_name)) {
      out.push(l);
      continue;
    }
    const nestedName = layerName(l);
    const where = { ...ctx, layer: nestedName };
    const nodes = (l.inbound_nodes ?? []) as unknown[][];
    if (nodes.length !== 1) {
      fail(`the nested model is called ${nodes.length} times; a nested model is read when it is called once`, where);
    }
    const call = nodes[0];
    if (!Array.isArray(call) || call.length !== 1 || !isRef(call[0])) fail('a nested model must be called on one tensor', where);
    const source = call[0] as RawRef;
    const inner = flatten(asFunctional({ class_name: l.class_name, config: l.config }, where), where, taken);
    const ins = inner.config.input_layers as RawRef[];
    const outs = inner.config.output_layers as RawRef[];
    if (!Array.isArray(ins) || ins.length !== 1 || !Array.isArray(outs) || outs.length !== 1) {
      fail('a nested model must have one input and one output', where);
    }
    const inputName = ins[0][0];
    const rename = new Map<string, string>();
    for (const il of layersOf(inner as unknown as Record<string, unknown>)) {
      const n = layerName(il);
      if (n === inputName) continue;
      const flat = taken.has(n) && !inner.moved.some(([, , m]) => m === n) ? uniqueName(`${nestedName}_${n}`, taken) : n;
      taken.add(flat);
      rename.set(n, flat);
    }
    const mapRef = (r: RawRef): RawRef => (r[0] === inputName ? source : [rename.get(r[0]) ?? r[0], r[1], r[2], r[3] ?? {}]);
    for (const il of layersOf(inner as unknown as Record<string, unknown>)) {
      const n = layerName(il);
      if (n === inputName) continue;
      const name = rename.get(n)!;
      const nodesIn = ((il.inbound_nodes ?? []) as unknown[][]).map((node) => (Array.isArray(node) ? node.map((r) => (isRef(r) ? mapRef(r) : r)) : node));
      const cfg: Record<string, unknown> = { ...il.config, name };
      delete cfg.batch_input_shape;
      delete cfg.batch_shape;
      out.push({ ...il, name, config: cfg, inbound_nodes: nodesIn });
      moved.push([nestedName, n, name]);
    }
    for (const [from, inLayer, to] of inner.moved) moved.push([`${nestedName}/${from}`, inLayer, rename.get(to) ?? to]);
    outputOf.set(nestedName, mapRef(outs[0]));
  }
  const fix = (r: unknown): unknown => {
    if (!isRef(r)) return r;
    const o = outputOf.get(r[0]);
    return o ? [o[0], o[1], o[2], ...(r.length > 3 ? [r[3]] : [])] : r;
  };
  for (const l of out) {
    if (Array.isArray(l.inbound_nodes)) l.inbound_nodes = l.inbound_nodes.map((node) => (Array.isArray(node) ? node.map(fix) : node));
  }
  const fixList = (v: unknown) => (Array.isArray(v) && typeof v[0] === 'string' ? fix(v) : Array.isArray(v) ? v.map(fix) : v);
  return {
    config: { ...config, layers: out, input_layers: fixList(config.input_layers), output_layers: fixList(config.output_layers) },
    moved,
  };
}

/**
 * The topology with nested models inlined and the weights renamed to match,
 * or the inputs unchanged when nothing is nested.
 */
export function flattenNested(
  topology: Record<string, unknown>,
  weights: WeightEntry[],
  ctx: ErrorContext,
): { topology: Record<string, unknown>; weights: WeightEntry[] } {
  const mc = modelConfigOf(topology, ctx);
  if (!hasNested(mc)) return { topology, weights };
  const taken = new Set<string>();
  const collect = (m: Record<string, unknown>, top: boolean) => {
    for (const l of layersOf(m)) {
      if (MODEL_CLASSES.has(l.class_name)) collect({ class_name: l.class_name, config: l.config }, false);
      else if (top) taken.add(layerName(l));
    }
  };
  collect(mc, true);
  const flat = flatten(mc as { class_name: string; config: Record<string, unknown> }, ctx, taken);
  const flatConfig = { class_name: 'Functional', config: flat.config };
  const out = topology.model_config ? { ...topology, model_config: flatConfig } : { ...topology, ...flatConfig };
  // A moved layer's weights are stored as <scope>/<layer>/<w> (Keras) or <layer>/<w> (TF.js): renamed <flat name>/<w>.
  const names = new Map<string, string>();
  for (const [scope, inner, flatName] of flat.moved) {
    for (const w of weights) {
      const n = w.spec.name;
      for (const prefix of [`${scope}/${inner}/`, `${inner}/`]) {
        if (n.startsWith(prefix) && !names.has(n)) {
          names.set(n, `${flatName}/${n.slice(prefix.length)}`);
          break;
        }
      }
    }
  }
  const renamed = weights.map((w) => (names.has(w.spec.name) ? { spec: { ...w.spec, name: names.get(w.spec.name)! }, bytes: w.bytes } : w));
  return { topology: out, weights: renamed };
}
