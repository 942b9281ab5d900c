// latency.md and latency.svg from a latency table.
import type { LatencyTable, LayerLatency } from './table.js';
import type { RuntimeId } from './engines.js';

const f2 = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(2));
const f3 = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(3));

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Measured conv time of the model per runtime (sum of the original convs' best rounds it could run). */
export function convTotals(t: LatencyTable): Partial<Record<RuntimeId, number>> {
  const out: Partial<Record<RuntimeId, number>> = {};
  for (const r of t.runtimes) out[r.id] = t.layers.reduce((a, l) => a + (l.runtimes[r.id]?.original ?? 0), 0);
  return out;
}

export function latencyMarkdown(t: LatencyTable): string {
  const m = t.machine;
  const lines: string[] = [
    `# Latency of ${t.model} on this device`,
    '',
    `- Machine: ${m.cpu}, ${m.cores} hardware threads, ${m.memGiB} GiB, Node ${m.node}; load average ${m.loadStart.map((v) => v.toFixed(1)).join(' / ')} at start, ${m.loadEnd.map((v) => v.toFixed(1)).join(' / ')} at the end.`,
    `- Input ${t.inputShape.join('x')} (HxWxC), batch ${t.batch}, ${t.threads} thread(s); ${t.reps} interleaved rounds per measurement after a warm-up; the best round of each.`,
    `- Runtimes: ${t.runtimes.map((r) => `${r.id} = ${r.name}`).join('; ')}${t.unavailable.length ? `; unavailable: ${t.unavailable.map((u) => `${u.id} (${u.why})`).join('; ')}` : ''}.`,
    '',
    'Per layer and runtime: the original conv, then each replacement (DAC with our fused kernel in `ours`; spatial and channel',
    'as two dense convs). MACs ratio = replacement / original MACs; time ratio = replacement / original time measured in the same',
    'rounds; realised/ideal = (1 - time ratio) / (1 - MACs ratio), the fraction of the ideal saving the runtime turns into time',
    '(1 = all of it; negative = slower than the original).',
    '',
  ];
  if (t.whole.length) {
    lines.push('## Whole model', '', '| runtime | variant | MACs | ms | vs original |', '|---|---|---:|---:|---:|');
    for (const w of t.whole) {
      const orig = t.whole.find((x) => x.runtime === w.runtime && x.variant === 'original')?.ms ?? null;
      lines.push(`| ${w.engine} | ${w.variant} | ${w.macs.toLocaleString('en-US')} | ${w.ms === null ? `n/a (${w.note ?? ''})` : f2(w.ms)} | ${w.ms !== null && orig ? f3(w.ms / orig) : 'n/a'} |`);
    }
    if (t.plan) lines.push('', `Decomposed with ${JSON.stringify(t.plan.policy)}: ${t.plan.layers.filter((l) => l.method !== 'keep').map((l) => `${l.name} ${l.method} ${l.rank}`).join(', ') || 'nothing replaced'}.`);
    lines.push('');
  }
  const totals = convTotals(t);
  lines.push('## Conv time per runtime', '', ...t.runtimes.map((r) => `- ${r.id}: ${f2(totals[r.id] ?? null)} ms over ${t.layers.length} convs`), '');
  for (const l of t.layers) {
    lines.push(
      `## ${l.name}: ${l.inH}x${l.inW}x${l.c} -> ${l.outH}x${l.outW}x${l.n}, ${l.kh}x${l.kw}, stride ${l.strides.join('x')}, dilation ${l.dilations.join('x')}, pads ${l.pads.join(',')}`,
      '',
    );
    if (l.skipReason) lines.push(`Not decomposable: ${l.skipReason}.`, '');
    const ids = t.runtimes.map((r) => r.id).filter((id) => l.runtimes[id]);
    lines.push(`original: ${ids.map((id) => `${id} ${l.runtimes[id]!.original === null ? `n/a (${l.runtimes[id]!.note})` : `${f2(l.runtimes[id]!.original)} ms`}`).join(', ')}`, '');
    const keys = new Map<string, { method: string; rank: number; dacRank: number; macsRatio: number }>();
    for (const id of ids) for (const v of l.runtimes[id]!.variants) keys.set(`${v.method}:${v.rank}`, v);
    if (keys.size === 0) continue;
    lines.push(
      `| method | rank | MACs ratio | ${ids.map((id) => `${id} ms | ${id} time ratio | ${id} realised/ideal`).join(' | ')} |`,
      `|---|---:|---:|${ids.map(() => '---:|---:|---:').join('|')}|`,
    );
    for (const [key, k] of keys) {
      const cells = ids.map((id) => {
        const v = l.runtimes[id]!.variants.find((x) => `${x.method}:${x.rank}` === key);
        return v ? `${f2(v.ms)} | ${f3(v.timeRatio)} | ${f2(v.realisedOverIdeal)}` : 'n/a | n/a | n/a';
      });
      lines.push(`| ${k.method} | ${k.rank} | ${f3(k.macsRatio)} | ${cells.join(' | ')} |`);
    }
    lines.push('');
  }
  return lines.join('\n') + '\n';
}

const COLORS: Record<RuntimeId, string> = { ours: '#1b9e77', ort: '#d95f02', tfjs: '#7570b3' };

/** Small multiples: per decomposable layer, DAC time ratio vs rank in each runtime, with the MACs ratio as a dashed line. */
export function latencySvg(t: LatencyTable): string {
  const panels = t.layers.filter((l) => t.runtimes.some((r) => (l.runtimes[r.id]?.variants ?? []).some((v) => v.method === 'dac')));
  const cols = Math.max(1, Math.min(4, panels.length));
  const rows = Math.max(1, Math.ceil(panels.length / cols));
  const pw = 220;
  const ph = 170;
  const top = 56;
  const W = cols * pw + 20;
  const H = top + rows * ph + 20;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">DAC time / original conv time vs rank (batch ${t.batch}, ${t.threads} thread(s))</text>`,
  ];
  let lx = 14;
  for (const r of t.runtimes) {
    out.push(`<line x1="${lx}" y1="36" x2="${lx + 18}" y2="36" stroke="${COLORS[r.id]}" stroke-width="2"/><text x="${lx + 22}" y="40">${esc(r.id)}</text>`);
    lx += 70;
  }
  out.push(`<line x1="${lx}" y1="36" x2="${lx + 18}" y2="36" stroke="#444" stroke-dasharray="4 3"/><text x="${lx + 22}" y="40">MACs ratio</text>`);
  out.push(`<line x1="${lx + 110}" y1="36" x2="${lx + 128}" y2="36" stroke="#bbb"/><text x="${lx + 132}" y="40">1 = original</text>`);
  panels.forEach((l: LayerLatency, p) => {
    const x0 = 10 + (p % cols) * pw + 36;
    const y0 = top + Math.floor(p / cols) * ph + 16;
    const w = pw - 50;
    const h = ph - 46;
    const dac = (id: RuntimeId) => (l.runtimes[id]?.variants ?? []).filter((v) => v.method === 'dac');
    const ranks = Math.max(...t.runtimes.flatMap((r) => dac(r.id).map((v) => v.rank)), 1);
    const ys = t.runtimes.flatMap((r) => dac(r.id).flatMap((v) => [v.timeRatio ?? 0, v.macsRatio]));
    const ymax = Math.max(1.2, ...ys) * 1.05;
    const sx = (rank: number) => +(x0 + (ranks === 1 ? w / 2 : ((rank - 1) / (ranks - 1)) * w)).toFixed(1);
    const sy = (v: number) => +(y0 + h - (v / ymax) * h).toFixed(1);
    out.push(`<text x="${x0 + w / 2}" y="${y0 - 4}" text-anchor="middle">${esc(l.name)} ${l.inH}x${l.inW}x${l.c}&#8594;${l.n}</text>`);
    out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#999"/>`);
    out.push(`<line x1="${x0}" y1="${sy(1)}" x2="${x0 + w}" y2="${sy(1)}" stroke="#bbb"/>`);
    for (const v of [0, ymax / 2, ymax]) out.push(`<text x="${x0 - 4}" y="${sy(v) + 4}" text-anchor="end">${v.toFixed(1)}</text>`);
    for (const rank of [1, ranks]) out.push(`<text x="${sx(rank)}" y="${y0 + h + 14}" text-anchor="middle">${rank}</text>`);
    out.push(`<text x="${x0 + w / 2}" y="${y0 + h + 26}" text-anchor="middle" fill="#666">rank</text>`);
    const macs = t.runtimes.map((r) => dac(r.id)).find((d) => d.length) ?? [];
    out.push(`<polyline fill="none" stroke="#444" stroke-dasharray="4 3" points="${macs.map((v) => `${sx(v.rank)},${sy(v.macsRatio)}`).join(' ')}"/>`);
    for (const r of t.runtimes) {
      const pts = dac(r.id).filter((v) => v.timeRatio !== null);
      if (!pts.length) continue;
      out.push(`<polyline fill="none" stroke="${COLORS[r.id]}" stroke-width="1.5" points="${pts.map((v) => `${sx(v.rank)},${sy(v.timeRatio!)}`).join(' ')}"/>`);
      for (const v of pts) out.push(`<circle cx="${sx(v.rank)}" cy="${sy(v.timeRatio!)}" r="2.5" fill="${COLORS[r.id]}"/>`);
    }
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
