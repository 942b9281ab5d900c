// The GraphDef inside a TF.js graph model (model.json "format": "graph-model"):
// nodes, their attributes as the converter writes them (protobuf JSON:
// int64 as strings, strings base64), tensor references and a topological order.
import { DacError, type ErrorContext } from '../../errors.js';

export interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, AttrValue>;
  [key: string]: unknown;
}

export interface AttrValue {
  s?: string;
  i?: string | number;
  f?: number;
  b?: boolean;
  type?: string;
  shape?: { dim?: { size?: string | number }[]; unknownRank?: boolean };
  tensor?: { dtype?: string; tensorShape?: { dim?: { size?: string | number }[] }; [key: string]: unknown };
  list?: { i?: (string | number)[]; s?: string[]; f?: number[] };
  [key: string]: unknown;
}

/** A data input: the producing node and which of its outputs. */
export interface TensorRef {
  node: string;
  index: number;
}

/** "name", "name:1" (output 1) or "^name" (control dependency: null). */
export function parseRef(input: string): TensorRef | null {
  if (input.startsWith('^')) return null;
  const m = /^(.*):(\d+)$/.exec(input);
  return m ? { node: m[1], index: Number(m[2]) } : { node: input, index: 0 };
}

export function refKey(ref: TensorRef): string {
  return `${ref.node}:${ref.index}`;
}

/** The data inputs of a node, in order. */
export function dataInputs(node: GraphNode): TensorRef[] {
  return (node.input ?? []).map(parseRef).filter((r): r is TensorRef => r !== null);
}

export function attrString(node: GraphNode, key: string): string | undefined {
  const s = node.attr?.[key]?.s;
  return typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : undefined;
}

export function attrStrings(node: GraphNode, key: string): string[] {
  const list = node.attr?.[key]?.list?.s;
  return Array.isArray(list) ? list.map((s) => Buffer.from(String(s), 'base64').toString('utf8')) : [];
}

export function attrInts(node: GraphNode, key: string): number[] | undefined {
  const list = node.attr?.[key]?.list;
  if (!list) return undefined;
  return (list.i ?? []).map(Number);
}

export function attrInt(node: GraphNode, key: string): number | undefined {
  const i = node.attr?.[key]?.i;
  return i === undefined ? undefined : Number(i);
}

export function attrFloat(node: GraphNode, key: string): number | undefined {
  const f = node.attr?.[key]?.f;
  return f === undefined ? undefined : Number(f);
}

export function attrBool(node: GraphNode, key: string): boolean | undefined {
  const b = node.attr?.[key]?.b;
  return b === undefined ? undefined : Boolean(b);
}

/** A TensorShapeProto's dims (-1 where unknown), or null for unknown rank or anything malformed. */
export function protoDims(shape: { dim?: { size?: string | number }[]; unknownRank?: boolean } | undefined): number[] | null {
  if (!shape || typeof shape !== 'object' || shape.unknownRank) return null;
  const dim = shape.dim ?? [];
  if (!Array.isArray(dim)) return null;
  // Protobuf JSON omits zero-valued fields: a dim without size has size 0.
  const out = dim.map((d) => (d && typeof d === 'object' ? Number(d.size ?? 0) : NaN));
  return out.every((d) => Number.isInteger(d) && d >= -1) ? out : null;
}

export function encodeString(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

export function intList(values: number[]): AttrValue {
  return { list: { i: values.map(String) } };
}

export interface Graph {
  nodes: GraphNode[];
  byName: Map<string, GraphNode>;
  /** Node names in an order where every node comes after its data and control inputs (loop back-edges aside). */
  order: string[];
  /** For each node, the nodes that read any of its outputs (data inputs only), with the input slot. */
  consumers: Map<string, { node: GraphNode; slot: number; index: number }[]>;
}

/** Validates the node list and orders it; a reference to a missing node or a cycle is an error. */
export function parseGraph(topology: Record<string, unknown>, ctx: ErrorContext): Graph {
  const nodes = topology.node as GraphNode[];
  if (!Array.isArray(nodes)) {
    const keras = 'class_name' in topology || 'model_config' in topology;
    throw new DacError(
      'EFORMAT',
      keras ? "modelTopology is a Keras config, not GraphDef nodes: a Layers model labelled 'graph-model'" : 'modelTopology.node must be an array of nodes',
      { ...ctx, field: keras ? 'format' : 'modelTopology.node' },
    );
  }
  const byName = new Map<string, GraphNode>();
  for (const [i, n] of nodes.entries()) {
    if (!n || typeof n !== 'object' || typeof n.name !== 'string' || n.name === '' || typeof n.op !== 'string') {
      throw new DacError('EFORMAT', `node [${i}] needs a name and an op`, { ...ctx, field: 'modelTopology.node' });
    }
    if (n.input !== undefined && (!Array.isArray(n.input) || !n.input.every((s) => typeof s === 'string'))) {
      throw new DacError('EFORMAT', 'input must be an array of strings', { ...ctx, layer: n.name, field: 'input' });
    }
    if (n.attr !== undefined && (typeof n.attr !== 'object' || n.attr === null || Array.isArray(n.attr))) {
      throw new DacError('EFORMAT', 'attr must be an object', { ...ctx, layer: n.name, field: 'attr' });
    }
    if (byName.has(n.name)) throw new DacError('EFORMAT', 'two nodes have this name', { ...ctx, layer: n.name });
    byName.set(n.name, n);
  }
  const consumers = new Map<string, { node: GraphNode; slot: number; index: number }[]>();
  const deps = new Map<string, string[]>();
  for (const n of nodes) {
    const mine: string[] = [];
    (n.input ?? []).forEach((input) => {
      const control = input.startsWith('^');
      const name = control ? input.slice(1) : parseRef(input)!.node;
      // Converters leave control edges to nodes they pruned (variable reads); TF.js ignores them, so do we.
      if (control && !byName.has(name)) return;
      if (!byName.has(name)) throw new DacError('EFORMAT', `input ${input} names no node`, { ...ctx, layer: n.name, field: 'input' });
      // A while loop feeds NextIteration back into Merge: that edge is not an ordering constraint.
      if (byName.get(name)!.op !== 'NextIteration') mine.push(name);
    });
    deps.set(n.name, mine);
    dataInputs(n).forEach((ref, slot) => {
      const list = consumers.get(ref.node) ?? [];
      list.push({ node: n, slot, index: ref.index });
      consumers.set(ref.node, list);
    });
  }
  // Kahn's algorithm, iterative, in file order among ready nodes so the order is stable.
  const pending = new Map<string, number>();
  const users = new Map<string, string[]>();
  for (const n of nodes) {
    const d = deps.get(n.name)!;
    pending.set(n.name, d.length);
    for (const p of d) {
      const list = users.get(p);
      if (list) list.push(n.name);
      else users.set(p, [n.name]);
    }
  }
  const order: string[] = [];
  const ready = nodes.filter((n) => pending.get(n.name) === 0).map((n) => n.name).reverse();
  while (ready.length) {
    const name = ready.pop()!;
    order.push(name);
    const next: string[] = [];
    for (const u of users.get(name) ?? []) {
      const left = pending.get(u)! - 1;
      pending.set(u, left);
      if (left === 0) next.push(u);
    }
    ready.push(...next.reverse());
  }
  if (order.length !== nodes.length) {
    const stuck = nodes.find((n) => pending.get(n.name)! > 0)!;
    throw new DacError('EFORMAT', 'the graph has a cycle (outside a while loop)', { ...ctx, layer: stuck.name });
  }
  return { nodes, byName, order, consumers };
}
