// The fleet: every device with its firmware and presence, filtered by type, presence or version.
import { call, describeError } from '../api.js';
import { fill, h } from '../dom.js';
import { dateTime, orDash } from '../format.js';
import { keepLive } from '../live.js';
import { presenceBadge } from '../ui/badge.js';
import { field, messageArea } from '../ui/form.js';
import { pageHeader, section } from '../ui/page.js';
import { cell, keyedRows } from '../ui/table.js';

export function renderDevices({ main, signal }) {
  const messages = messageArea();
  const type = h('select', {}, h('option', { value: '' }, 'All types'));
  const online = h('select', {}, h('option', { value: '' }, 'Online or not'), h('option', { value: 'true' }, 'Online'), h('option', { value: 'false' }, 'Offline'));
  const version = h('input', { type: 'search', autocomplete: 'off', placeholder: 'e.g. <1.2.0' });
  const count = h('p', { class: 'muted', role: 'status' });
  const tbody = h('tbody');
  const table = h('table', { class: 'data' },
    h('caption', { class: 'visually-hidden' }, 'Devices'),
    h('thead', {}, h('tr', {}, ['Device', 'Type', 'Version', 'Chip', 'Slot', 'Presence', 'Last seen'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const sync = keyedRows(tbody, { key: (d) => d.id, create: deviceRow, empty: 'No devices match.', columns: 7 });

  const live = keepLive({
    signal,
    events: '/api/events?types=presence,announce',
    minReloadMs: 2_000,
    async load() {
      const q = new URLSearchParams();
      if (type.value) q.set('type', type.value);
      if (online.value) q.set('online', online.value);
      if (version.value.trim()) q.set('version', version.value.trim());
      const [devices, all] = await Promise.all([call('GET', `/api/devices?${q}`, { signal }), call('GET', '/api/devices', { signal })]);
      return { devices, types: [...new Set(all.map((d) => d.type).filter((t) => t !== null))].sort() };
    },
    render({ devices, types }) {
      messages.clear();
      const selected = type.value;
      fill(type, h('option', { value: '' }, 'All types'), types.map((t) => h('option', { value: t }, t)));
      type.value = selected;
      count.textContent = `${devices.length} device(s)`;
      sync(devices);
    },
    onError: (err) => messages.show('error', describeError(err)),
  });
  for (const control of [type, online]) control.addEventListener('change', () => live.reload());
  version.addEventListener('change', () => live.reload());

  main.append(
    pageHeader('Devices').el,
    section('Fleet',
      h('div', { class: 'toolbar' }, field('Type', type), field('Presence', online), field('Version range', version)),
      messages.el, count, h('div', { class: 'table-scroll' }, table)));
}

function deviceRow(d) {
  const cells = Array.from({ length: 6 }, () => cell());
  return {
    el: h('tr', {}, h('td', {}, h('a', { href: `#/devices/${encodeURIComponent(d.id)}` }, d.id)), cells.map((c) => c.el)),
    update(d) {
      cells[0].set(d.type, orDash);
      cells[1].set(d.version, orDash);
      cells[2].set(d.chip, orDash);
      cells[3].set(d.slot, orDash);
      cells[4].set(d.online, presenceBadge);
      cells[5].set(d.lastSeenAt, dateTime);
    },
  };
}
