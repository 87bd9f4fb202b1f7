import { formatBytes, formatRate } from '../stats.js';
import { renderMarkdown } from './markdown.js';
import type { BenchReport } from './schema.js';

const COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7'];

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

interface Bar {
  label: string;
  value: number;
  text: string;
}

/** A horizontal bar chart as inline SVG. */
function barChart(id: string, title: string, bars: Bar[]): string {
  const rowH = 26;
  const left = 120;
  const width = 640;
  const height = 40 + rowH * bars.length;
  const max = Math.max(...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)), 1e-12);
  const rows = bars.map((b, i) => {
    const w = Number.isFinite(b.value) ? Math.max(1, ((width - left - 110) * b.value) / max) : 0;
    const y = 30 + i * rowH;
    return (
      `<text x="${left - 8}" y="${y + 15}" text-anchor="end">${esc(b.label)}</text>` +
      `<rect class="bar" x="${left}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${COLORS[i % COLORS.length]}"><title>${esc(b.text)}</title></rect>` +
      `<text x="${left + w + 6}" y="${y + 15}">${esc(b.text)}</text>`
    );
  });
  return `<figure><svg data-chart="${id}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(title)}">` +
    `<text x="0" y="16" class="title">${esc(title)}</text>${rows.join('')}</svg></figure>`;
}

interface Series {
  label: string;
  points: [number, number][];
}

/** A line chart with a log2 x axis (sequence length) as inline SVG. */
function lineChart(id: string, title: string, xLabel: string, series: Series[], format: (v: number) => string): string {
  const width = 640;
  const height = 300;
  const pad = { l: 90, r: 130, t: 30, b: 40 };
  const xs = series.flatMap((s) => s.points.map(([x]) => Math.log2(x)));
  const ys = series.flatMap((s) => s.points.map(([, y]) => y)).filter(Number.isFinite);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const y1 = Math.max(...ys, 1e-12);
  const sx = (x: number) => pad.l + ((Math.log2(x) - x0) / Math.max(1e-9, x1 - x0)) * (width - pad.l - pad.r);
  const sy = (y: number) => height - pad.b - (y / y1) * (height - pad.t - pad.b);
  const ticks = [...new Set(series.flatMap((s) => s.points.map(([x]) => x)))].sort((a, b) => a - b);
  const axis =
    `<line x1="${pad.l}" y1="${height - pad.b}" x2="${width - pad.r}" y2="${height - pad.b}" stroke="#999"/>` +
    `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${height - pad.b}" stroke="#999"/>` +
    ticks.map((t) => `<text x="${sx(t)}" y="${height - pad.b + 16}" text-anchor="middle">${t}</text>`).join('') +
    `<text x="${(pad.l + width - pad.r) / 2}" y="${height - 6}" text-anchor="middle">${esc(xLabel)}</text>` +
    `<text x="${pad.l - 6}" y="${pad.t + 4}" text-anchor="end">${esc(format(y1))}</text>` +
    `<text x="${pad.l - 6}" y="${height - pad.b}" text-anchor="end">0</text>`;
  const lines = series.map((s, i) => {
    const pts = s.points.filter(([, y]) => Number.isFinite(y));
    const color = COLORS[i % COLORS.length];
    const poly = pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    const last = pts.at(-1);
    return `<polyline class="line" fill="none" stroke="${color}" stroke-width="2" points="${poly}"/>` +
      pts.map(([x, y]) => `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${color}"><title>${esc(`${s.label}: ${x} → ${format(y)}`)}</title></circle>`).join('') +
      (last ? `<text x="${sx(last[0]) + 8}" y="${sy(last[1]) + 4}" fill="${color}">${esc(s.label)}</text>` : '');
  });
  return `<figure><svg data-chart="${id}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(title)}">` +
    `<text x="0" y="16" class="title">${esc(title)}</text>${axis}${lines.join('')}</svg></figure>`;
}

/** A self-contained HTML page (no scripts, no network): charts as inline SVG, then the tables. */
export function renderHtml(r: BenchReport): string {
  const charts: string[] = [];
  if (r.training.length > 0) {
    charts.push(barChart('train-tokens', 'Fine-tuning tokens/s (median)', r.training.map((t) => ({ label: t.mode, value: t.tokensPerSecond.median, text: `${formatRate(t.tokensPerSecond.median)} tok/s` }))));
    charts.push(barChart('train-memory', 'Peak backend bytes per token', r.training.map((t) => ({ label: t.mode, value: t.peakBytesPerToken, text: formatBytes(t.peakBytesPerToken) }))));
  }
  if (r.inference.length > 0) {
    charts.push(barChart('inference-tokens', 'Inference tokens/s (median)', r.inference.map((i) => ({ label: `${i.mode} b${i.batchSize}`, value: i.tokensPerSecond.median, text: `${formatRate(i.tokensPerSecond.median)} tok/s` }))));
  }
  if (r.scaling.length > 0) {
    const keys = [...new Set(r.scaling.map((p) => `${p.model} b${p.batchSize}`))];
    const series = (pick: (p: BenchReport['scaling'][number]) => number): Series[] =>
      keys.map((key) => ({ label: key, points: r.scaling.filter((p) => `${p.model} b${p.batchSize}` === key).map((p) => [p.seqLen, pick(p)] as [number, number]) }));
    charts.push(lineChart('scaling-tokens', 'Training tokens/s vs sequence length', 'sequence length', series((p) => p.tokensPerSecond), (v) => `${formatRate(v)} tok/s`));
    charts.push(lineChart('scaling-memory', 'Peak bytes per token vs sequence length', 'sequence length', series((p) => p.peakBytesPerToken), formatBytes));
  }
  const md = renderMarkdown(r);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mamba-ts bench — ${esc(r.model.name)} on ${esc(r.backend.name)}</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
svg text{font:12px system-ui,sans-serif} svg .title{font-weight:600;font-size:14px}
figure{margin:1em 0} pre{background:#f6f6f6;padding:1em;overflow:auto}
</style></head><body>
<h1>mamba-ts bench</h1>
<p>${esc(r.model.name)} (${(r.model.parameters / 1e6).toFixed(2)}M parameters) on ${esc(r.backend.name)} — ${esc(r.backend.device)}; ${esc(r.createdAt)}</p>
${charts.join('\n')}
<h2>Tables</h2>
<pre>${esc(md)}</pre>
</body></html>
`;
}
