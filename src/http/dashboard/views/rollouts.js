// Rollouts, newest first, each with its live progress and wave.
import { call, describeError, session } from '../api.js';
import { h } from '../dom.js';
import { dateTime } from '../format.js';
import { keepLive } from '../live.js';
import { applyAttemptEvent, applyRolloutEvent, summarize, waveCount } from '../rollout-model.js';
import { ROLLOUT_STATES } from '../states.js';
import { rolloutStateBadge } from '../ui/badge.js';
import { field, messageArea } from '../ui/form.js';
import { pageHeader, section } from '../ui/page.js';
import { rolloutProgress } from '../ui/progress.js';
import { cell, keyedRows } from '../ui/table.js';

export function renderRollouts({ main, signal }) {
  const messages = messageArea();
  const filter = h('select', {}, h('option', { value: '' }, 'All'), ROLLOUT_STATES.map((st) => h('option', { value: st }, st)));
  const tbody = h('tbody');
  const table = h('table', { class: 'data' },
    h('caption', { class: 'visually-hidden' }, 'Rollouts, newest first'),
    h('thead', {}, h('tr', {}, ['Rollout', 'Firmware', 'State', 'Progress', 'Wave', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const sync = keyedRows(tbody, { key: (r) => r.id, create: rolloutRow, empty: 'No rollouts match.', columns: 6 });
  const show = (list) => sync(filter.value ? list.filter((r) => r.state === filter.value) : list);

  const live = keepLive({
    signal,
    events: '/api/events?types=rollout,attempt',
    load: () => call('GET', '/api/rollouts', { signal }),
    render: (list) => { messages.clear(); show(list); },
    onEvent(type, event, list) {
      const rollout = list.find((r) => r.id === event.rolloutId);
      if (!rollout) return false;
      return type === 'attempt' ? applyAttemptEvent(rollout, event) : type === 'rollout' && applyRolloutEvent(rollout, event);
    },
    onError: (err) => messages.show('error', describeError(err)),
  });
  filter.addEventListener('change', () => show(live.current() ?? []));

  main.append(
    pageHeader('Rollouts', { actions: session.mayChange ? [h('a', { href: '#/rollouts/new', class: 'button button-primary' }, 'New rollout')] : [] }).el,
    section('All rollouts', h('div', { class: 'toolbar' }, field('Show', filter)), messages.el, h('div', { class: 'table-scroll' }, table)));
}

function rolloutRow(r) {
  const name = h('a', { href: `#/rollouts/${encodeURIComponent(r.id)}` });
  const firmware = cell();
  const state = cell();
  const progress = rolloutProgress(`Progress of rollout ${r.name ?? r.id}`);
  const wave = cell();
  const created = cell();
  return {
    el: h('tr', {}, h('td', {}, name), firmware.el, state.el, h('td', { class: 'progress-cell' }, progress.el), wave.el, created.el),
    update(r) {
      name.textContent = r.name ?? r.id;
      firmware.set(`${r.firmware.type} ${r.firmware.version}`);
      state.set(r.state, rolloutStateBadge);
      progress.update(summarize(r));
      const waves = waveCount(r);
      wave.set(`${Math.min((r.currentWave ?? 0) + 1, waves)} of ${waves}`);
      created.set(r.createdAt, dateTime);
    },
  };
}
