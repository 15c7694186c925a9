// Devices per firmware version of one type, as horizontal SVG bars (online part darker).
import { h, s } from '../dom.js';

const ROW = 28;
const LABEL = 110;
const WIDTH = 560;
const COUNT = 90;

/** versions: [{ version, count, online }], newest first. */
export function versionsChart(type, versions) {
  const max = Math.max(1, ...versions.map((v) => v.count));
  const barSpace = WIDTH - LABEL - COUNT;
  const height = versions.length * ROW;
  const summary = versions.map((v) => `${v.version}: ${v.count} (${v.online} online)`).join('; ');
  const svg = s('svg', { viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height, role: 'img', 'aria-label': `${type} devices per version: ${summary}` },
    versions.map((v, i) => {
      const y = i * ROW;
      const total = (v.count / max) * barSpace;
      const online = (v.online / max) * barSpace;
      return s('g', { transform: `translate(0 ${y})` },
        s('title', {}, `${type} ${v.version}: ${v.count} devices, ${v.online} online`),
        s('text', { x: LABEL - 8, y: ROW / 2, class: 'chart-label', 'text-anchor': 'end', 'dominant-baseline': 'middle' }, v.version),
        s('rect', { x: LABEL, y: 4, width: Math.max(total, 2), height: ROW - 8, rx: 3, class: 'chart-bar' }),
        s('rect', { x: LABEL, y: 4, width: online, height: ROW - 8, rx: 3, class: 'chart-bar-online' }),
        s('text', { x: LABEL + Math.max(total, 2) + 6, y: ROW / 2, class: 'chart-count', 'dominant-baseline': 'middle' }, `${v.count} (${v.online} on)`));
    }));
  return h('figure', { class: 'chart' }, h('figcaption', {}, h('strong', {}, type), ` · ${versions.reduce((n, v) => n + v.count, 0)} devices`), svg);
}
