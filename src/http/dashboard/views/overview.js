// Fleet overview: health and counts, firmware versions per device type, rollouts in progress.
import { call, describeError } from '../api.js';
import { fill, h } from '../dom.js';
import { bytes } from '../format.js';
import { keepLive } from '../live.js';
import { isFinished, summarize } from '../rollout-model.js';
import { rolloutStateBadge } from '../ui/badge.js';
import { versionsChart } from '../ui/chart.js';
import { versionHistoryChart } from '../ui/history-charts.js';
import { messageArea } from '../ui/form.js';
import { link, pageHeader, section } from '../ui/page.js';
import { rolloutProgress } from '../ui/progress.js';
import { compareVersionsDesc } from '../versions.js';

export function renderOverview({ main, signal }) {
  const tiles = h('dl', { class: 'tiles' });
  const charts = h('div', { class: 'charts' });
  const rollouts = h('ul', { class: 'rollout-cards' });
  const messages = messageArea();
  const history = h('div', { class: 'charts' });
  const historyCharts = new Map(); // type → chart, made once per type seen
  main.append(
    pageHeader('Fleet overview').el, messages.el,
    h('section', { 'aria-label': 'Fleet figures' }, tiles),
    section('Firmware versions by device type',
      h('p', { class: 'legend' }, h('span', { class: 'swatch swatch-online' }), 'online ', h('span', { class: 'swatch swatch-offline' }), 'offline'),
      charts),
    section('Rollouts in progress', rollouts),
    section('Versions over time', history));

  keepLive({
    signal,
    events: '/api/events?types=presence,announce,rollout,attempt',
    minReloadMs: 2_000,
    async load() {
      const [health, devices, all] = await Promise.all([
        // 503 still carries the health report: something is degraded, and the tiles say what.
        call('GET', '/healthz', { signal }).catch((err) => (err.status === 503 && err.body ? err.body : Promise.reject(err))),
        call('GET', '/api/devices', { signal }),
        call('GET', '/api/rollouts', { signal }),
      ]);
      return { health, devices, rollouts: all.filter((r) => !isFinished(r.state)) };
    },
    render({ health, devices, rollouts: active }) {
      messages.clear();
      fill(tiles, figures(health, devices, active));
      fill(charts, versionCharts(devices));
      for (const type of [...new Set(devices.map((d) => d.type).filter(Boolean))].sort()) {
        if (!historyCharts.has(type)) { if (!historyCharts.size) history.replaceChildren(); historyCharts.set(type, versionHistoryChart(type, signal)); history.append(historyCharts.get(type).el); }
        historyCharts.get(type).poke();
      }
      if (!historyCharts.size) fill(history, h('p', { class: 'muted' }, 'No devices yet.'));
      fill(rollouts, active.length ? active.map(rolloutCard) : h('li', { class: 'muted' }, 'No rollout is running. ', link('Start one', 'rollouts', 'new'), '.'));
    },
    onError: (err) => messages.show('error', describeError(err)),
  });
}

function figures(health, devices, active) {
  const online = devices.filter((d) => d.online).length;
  const tile = (label, value, detail, failing = false) =>
    h('div', { class: `tile${failing ? ' tone-failed' : ''}` }, h('dt', {}, label), h('dd', {}, value, ' ', h('small', {}, detail)));
  return [
    tile('Devices', devices.length, `${new Set(devices.map((d) => d.type)).size} type(s)`),
    tile('Online', online, `of ${devices.length}`),
    tile('Rollouts in progress', active.length, active.length ? `${active.filter((r) => r.state === 'running').length} running` : 'none'),
    health
      ? [tile('Broker', health.broker.ok ? 'up' : 'down', `${health.broker.connectedDevices} connected`, !health.broker.ok),
        tile('Database', health.database.ok ? 'ok' : 'failing', health.database.kind, !health.database.ok),
        tile('Image store', bytes(health.disk.freeBytes), 'free', !health.disk.ok)]
      : tile('Health', 'unknown', 'no health report', true),
  ].flat();
}

function versionCharts(devices) {
  const byType = new Map();
  for (const d of devices) {
    if (!byType.has(d.type)) byType.set(d.type, new Map());
    const version = d.version ?? 'not announced';
    const entry = byType.get(d.type).get(version) ?? { version, count: 0, online: 0 };
    entry.count += 1;
    if (d.online) entry.online += 1;
    byType.get(d.type).set(version, entry);
  }
  if (byType.size === 0) return [h('p', { class: 'muted' }, 'No devices yet. Devices appear when they connect and announce their firmware.')];
  return [...byType.keys()].sort().map((type) =>
    versionsChart(type, [...byType.get(type).values()].sort((a, b) => compareVersionsDesc(a.version, b.version))));
}

function rolloutCard(r) {
  const progress = rolloutProgress(`Progress of rollout ${r.name ?? r.id}`);
  progress.update(summarize(r));
  return h('li', { class: 'rollout-card' },
    h('div', { class: 'rollout-card-head' }, link(r.name ?? r.id, 'rollouts', r.id), ' ', rolloutStateBadge(r.state),
      h('span', { class: 'muted' }, ` ${r.firmware.type} → ${r.firmware.version}`)),
    progress.el);
}
