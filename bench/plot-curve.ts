// The curve of issue #13 as a picture: per-device costs against fleet size, from the JSON that
// `npm run bench` writes, one line per Node.js version. A cost that grows linearly with the fleet
// is a flat line here, so anything that grows faster shows as a rise. Drawn with uPlot (the
// dashboard's charts) in Debian's Chromium through playwright-core, the dashboard tests' browser:
// no plotting dependency of its own.
//
//   npx tsx bench/plot-curve.ts bench/results/<run>.json ... [--out bench/curve.png] [--title "..."]
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import type { ScenarioResult } from './scenario.js';
import { CHROMIUM_PATH } from '../tests/support/browser.js';
import { fixed, KiB } from './stats.js';

interface RunFile {
  commit: string;
  node: string;
  devices: number;
  /** As report.ts writes them: each result with the phases it found disturbed. */
  results: (ScenarioResult & { disturbedPhases?: string[] })[];
}

/** One fleet size on one Node line: what the curve plots, per device. */
interface Point {
  node: string;
  commit: string;
  devices: number;
  connectWallMs: number;
  connectCpuMs: number;
  announceP99Ms: number;
  fanOutWallMs: number;
  fanOutCpuMs: number;
  memoryOneMoreKiB: number | null;
  memoryFromIdleKiB: number;
  /** Phases in which other processes took a noticeable share of the CPU (the bench's own flag). */
  disturbed: string[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    out: { type: 'string', default: 'bench/curve.png' },
    title: { type: 'string' },
    chromium: { type: 'string', default: CHROMIUM_PATH },
  },
});
if (!positionals.length) {
  console.error('usage: npx tsx bench/plot-curve.ts <bench/results/*.json> ... [--out bench/curve.png] [--title TEXT]');
  process.exit(2);
}

const points = positionals.flatMap((file): Point[] => {
  const run = JSON.parse(readFileSync(file, 'utf8')) as RunFile;
  return run.results.filter((r) => r.kind === 'pglite' && !r.failure && r.fanOut?.ms != null).map((r) => {
    const fanOut = r.fanOut!;
    const marginal = r.memory.marginal && 'perDevice' in r.memory.marginal ? r.memory.marginal.perDevice.rss / KiB : null;
    return {
      node: run.node.replace(/^v(\d+)\..*$/, 'Node $1'), commit: run.commit, devices: r.devices,
      connectWallMs: (r.connect.seconds * 1000) / r.devices, connectCpuMs: r.connect.server.cpuMs / r.devices,
      announceP99Ms: r.connect.announceToCommandMs?.p99 ?? NaN,
      fanOutWallMs: fanOut.ms! / r.devices, fanOutCpuMs: fanOut.server.cpuMs / r.devices,
      memoryOneMoreKiB: marginal, memoryFromIdleKiB: r.memory.perDevice.rss / KiB, disturbed: r.disturbedPhases ?? [],
    };
  });
}).sort((a, b) => a.node.localeCompare(b.node) || a.devices - b.devices);
if (!points.length) throw new Error('no completed PGlite run in the files given');

// The table the bench README carries, from the same points as the picture.
console.log('| Node | devices | connect + answered, a device (wall / server CPU) | announce p99 | fan-out, a device (wall / server CPU) | memory a device (one more / from idle) | commit | disturbed |');
console.log('|---|---|---|---|---|---|---|---|');
for (const p of points) {
  console.log(`| ${p.node} | ${p.devices.toLocaleString('en')} | ${fixed(p.connectWallMs, 2)} / ${fixed(p.connectCpuMs, 2)} ms | ${fixed(p.announceP99Ms, 0)} ms | ${fixed(p.fanOutWallMs, 3)} / ${fixed(p.fanOutCpuMs, 3)} ms | ${p.memoryOneMoreKiB === null ? '—' : fixed(p.memoryOneMoreKiB, 1)} / ${fixed(p.memoryFromIdleKiB, 1)} KiB | \`${p.commit}\` | ${p.disturbed.join(', ') || 'no'} |`);
}

const nodes = [...new Set(points.map((p) => p.node))];
const sizes = [...new Set(points.map((p) => p.devices))].sort((a, b) => a - b);
/**
 * uPlot's data: one array per series, null where a Node line has no run at that size. Several runs
 * of one size on one line are plotted as their mean (the table lists each), leaving out runs the
 * bench flagged as disturbed when an undisturbed one is there.
 */
function series(pick: (p: Point) => number | null): (number | null)[][] {
  return nodes.map((node) => sizes.map((n) => {
    const runs = points.filter((q) => q.node === node && q.devices === n);
    const quiet = runs.filter((q) => !q.disturbed.length);
    const values = (quiet.length ? quiet : runs).map(pick).filter((v): v is number => v !== null && Number.isFinite(v));
    return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
  }));
}
// `target`: #13's line where it is a per-device figure (1.5 s for 10,000 devices; 40 KiB).
const charts = [
  { title: 'Connect + announce answered, per device', unit: 'ms', lines: [['wall', series((p) => p.connectWallMs)], ['server CPU', series((p) => p.connectCpuMs)]] },
  { title: 'Fan-out to every device, per device', unit: 'ms', target: 0.15, lines: [['wall', series((p) => p.fanOutWallMs)], ['server CPU', series((p) => p.fanOutCpuMs)]] },
  { title: 'Server memory per connected device (RSS after full GC)', unit: 'KiB', target: 40, lines: [['one more device', series((p) => p.memoryOneMoreKiB)], ['from idle', series((p) => p.memoryFromIdleKiB)]] },
  { title: 'Announce → answer p99 while connecting', unit: 'ms', lines: [['p99', series((p) => p.announceP99Ms)]] },
];

const uplotDir = path.dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));
const title = values.title ?? `mqota, PGlite: costs per device against fleet size (${[...new Set(points.map((p) => p.commit))].join(', ')})`;
const spec = { sizes, nodes, charts };
const html = `<!doctype html><meta charset="utf-8">
<style>${readFileSync(path.join(uplotDir, 'uPlot.min.css'), 'utf8')}
body { font: 14px sans-serif; margin: 16px; background: #fff; } h1 { font-size: 17px; margin: 0 0 8px; }
#grid { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; } .u-title { font-size: 14px; }</style>
<h1>${title.replace(/</g, '&lt;')}</h1><div id="grid"></div>
<script>${readFileSync(path.join(uplotDir, 'uPlot.iife.min.js'), 'utf8')}</script>
<script>
const spec = ${JSON.stringify(spec)};
// One hue per Node line, solid for the first measure of a chart and dashed for the second.
const hues = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
for (const chart of spec.charts) {
  const el = document.createElement('div');
  document.getElementById('grid').appendChild(el);
  const ser = [{ label: 'devices' }], data = [spec.sizes];
  if (chart.target !== undefined) {
    ser.push({ label: '#13 target', stroke: '#888', width: 1.5, dash: [2, 3], points: { show: false } });
    data.push(spec.sizes.map(() => chart.target));
  }
  chart.lines.forEach(([label, perNode], i) => perNode.forEach((ys, k) => {
    ser.push({ label: spec.nodes[k] + ', ' + label, stroke: hues[k % hues.length], width: 2, dash: i ? [6, 4] : undefined,
      points: { size: 7 }, spanGaps: true, value: (u, v) => v == null ? '—' : v.toFixed(chart.unit === 'KiB' ? 1 : 2) });
    data.push(ys);
  }));
  new uPlot({
    title: chart.title, width: 620, height: 330, series: ser,
    scales: { x: { time: false }, y: { range: (u, min, max) => [0, max * 1.15] } },
    axes: [{ label: 'devices online' }, { label: chart.unit, size: 55 }],
    legend: { live: false },
  }, data, el);
}
</script>`;

if (!existsSync(values.chromium)) throw new Error(`Chromium is not at ${values.chromium} (Debian package chromium, or --chromium PATH)`);
const browser = await chromium.launch({ executablePath: values.chromium, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 }, deviceScaleFactor: 1 });
  await page.setContent(html, { waitUntil: 'load' });
  await page.locator('.uplot').nth(charts.length - 1).waitFor();
  writeFileSync(values.out, await page.screenshot({ fullPage: true }));
  console.log(`\n${values.out}: ${points.length} points, ${nodes.join(' and ')}`);
} finally {
  await browser.close();
}
