// Time-series line charts drawn by uPlot (served by mqota from its npm package, /vendor/). The
// data is columnar ({at: [ms], series: {name: [values]}}, as the history endpoints answer), and a
// table of the latest values sits beside each chart for screen readers and for copying.
import uPlot from '/vendor/uPlot.esm.js';
import { h } from '../dom.js';

// Counts hold until the next change: steps, not slopes.
const stepped = uPlot.paths.stepped({ align: 1 });
const PALETTE = ['#1f6feb', '#1a7f37', '#cf222e', '#bf8700', '#8250df', '#0a7d8c', '#6e7781', '#d1242f', '#9a6700', '#57606a'];

/**
 * A chart that can be given new data. colorOf: name → colour (else the palette's); nameOf: the label shown for a name.
 * Returns { el, update(data), destroy() }.
 */
export function timeChart({ label, colorOf = () => undefined, nameOf = (n) => n, width = 720, height = 240, empty = 'No data yet.' }) {
  const canvasBox = h('div', { class: 'timechart-plot', role: 'img', 'aria-label': label });
  const note = h('p', { class: 'muted' });
  const latest = h('table', { class: 'data compact timechart-latest' });
  const el = h('figure', { class: 'timechart' }, h('figcaption', {}, label), canvasBox, note, latest);
  let plot = null;
  let names = [];

  function update(data) {
    const next = Object.keys(data.series);
    if (!data.at.length || !next.length) {
      plot?.destroy();
      plot = null;
      names = [];
      note.textContent = empty;
      latest.replaceChildren();
      return;
    }
    note.textContent = '';
    const columns = [data.at.map((ms) => ms / 1000), ...next.map((n) => data.series[n])];
    if (plot && next.join('\u0000') === names.join('\u0000')) {
      plot.setData(columns);
    } else {
      plot?.destroy();
      names = next;
      plot = new uPlot({
        width, height,
        series: [{}, ...names.map((name, i) => ({ label: nameOf(name), stroke: colorOf(name) ?? PALETTE[i % PALETTE.length], width: 2, points: { show: false }, paths: stepped }))],
        axes: [{}, { label: 'devices', size: 50 }],
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
        legend: { live: false },
      }, columns, canvasBox);
    }
    const last = data.at.length - 1;
    latest.replaceChildren(
      h('caption', { class: 'visually-hidden' }, `${label}: latest values`),
      h('tbody', {}, names.map((n) => h('tr', {}, h('th', { scope: 'row' }, nameOf(n)), h('td', {}, String(data.series[n][last]))))));
  }

  return { el, update, destroy: () => plot?.destroy() };
}
