// The two "over time" charts: a rollout's attempts per state (GET /api/rollouts/{id}/timeline)
// and a type's devices per version (GET /api/fleet/versions). Each loads itself and reloads at
// most every few seconds when poked by its page's live updates.
import { call } from '../api.js';
import { stateLabel } from '../format.js';
import { timeChart } from './timechart.js';

// One colour per state, in the families of the progress bar: greens done, reds failed, blues updating, greys waiting.
const STATE_COLORS = {
  succeeded: '#1a7f37', failed: '#cf222e', rolled_back: '#8c1020', rejected: '#d63384', timed_out: '#bf5a00',
  pending: '#9aa8b8', sent: '#6e8bb0', accepted: '#8250df', downloading: '#1f6feb', downloaded: '#0a7d8c', rebooting: '#0b3d91', cancelled: '#57606a',
};
const RELOAD_MS = 3_000;

function selfLoading(chart, load, signal) {
  let last = 0;
  let timer = null;
  const reload = async () => {
    last = Date.now();
    timer = null;
    try { chart.update(await load()); } catch (err) { if (err.name !== 'AbortError') chart.update({ at: [], series: {} }); }
  };
  void reload();
  signal.addEventListener('abort', () => { clearTimeout(timer); chart.destroy(); });
  return {
    el: chart.el,
    poke() {
      if (timer || signal.aborted) return;
      timer = setTimeout(reload, Math.max(0, last + RELOAD_MS - Date.now()));
    },
  };
}

export function rolloutTimelineChart(rolloutId, signal) {
  const chart = timeChart({ label: 'Attempts per state over time', empty: 'No attempt yet.', colorOf: (state) => STATE_COLORS[state], nameOf: stateLabel });
  return selfLoading(chart, () => call('GET', `/api/rollouts/${encodeURIComponent(rolloutId)}/timeline`, { signal }), signal);
}

export function versionHistoryChart(type, signal) {
  const chart = timeChart({ label: `${type}: devices per version over time`, empty: 'No sample yet (taken every MQOTA_VERSION_SAMPLE_MS).' });
  return selfLoading(chart, () => call('GET', `/api/fleet/versions?type=${encodeURIComponent(type)}`, { signal }), signal);
}
