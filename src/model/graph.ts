// Ordering a model's graph: a reader gets layers (or layer calls) in
// whatever order the file lists them (src/formats/tfjs/topology.ts).
import { DacError, type ErrorContext } from '../errors.js';

/**
 * Topological order of a graph given as node -> predecessors. Unknown
 * predecessors and cycles are errors (a cyclic "feed-forward" net would make
 * a walker loop forever). Kahn's algorithm: linear in nodes and edges, in any
 * listing order, and iterative, so long chains are fine. `label` names a node
 * in errors (e.g. its layer, where nodes are layer calls).
 */
export function topoOrder(preds: Map<string, string[]>, ctx: ErrorContext = {}, label: (node: string) => string = (n) => n): string[] {
  const indegree = new Map<string, number>();
  const succs = new Map<string, string[]>();
  for (const [node, ps] of preds) {
    indegree.set(node, ps.length);
    for (const p of ps) {
      if (!preds.has(p)) throw new DacError('EGRAPH', `reads '${p}', which no node produces`, { ...ctx, layer: label(node) });
      let s = succs.get(p);
      if (!s) succs.set(p, (s = []));
      s.push(node);
    }
  }
  const ready = [...preds.keys()].filter((n) => indegree.get(n) === 0);
  const order: string[] = [];
  for (let head = 0; head < ready.length; head++) {
    const n = ready[head];
    order.push(n);
    for (const s of succs.get(n) ?? []) {
      const d = indegree.get(s)! - 1;
      indegree.set(s, d);
      if (d === 0) ready.push(s);
    }
  }
  if (order.length !== preds.size) {
    // Left are the cycles and everything after them: peel off, repeatedly,
    // what nothing left reads, so the message names the cycle itself.
    const left = new Set([...preds.keys()].filter((n) => indegree.get(n)! > 0));
    const readers = new Map<string, number>();
    for (const n of left) readers.set(n, (succs.get(n) ?? []).filter((s) => left.has(s)).length);
    const unread = [...left].filter((n) => readers.get(n) === 0);
    while (unread.length) {
      const n = unread.pop()!;
      left.delete(n);
      for (const p of preds.get(n)!) {
        if (!left.has(p)) continue;
        const r = readers.get(p)! - 1;
        readers.set(p, r);
        if (r === 0) unread.push(p);
      }
    }
    const stuck = [...left];
    throw new DacError('EGRAPH', `graph has a cycle through ${stuck.slice(0, 5).map((s) => `'${label(s)}'`).join(', ')}`, {
      ...ctx,
      layer: label(stuck[0]),
    });
  }
  return order;
}
