// One device: what it runs, whether it is online, and its update attempts with each step.
import { call, describeError } from '../api.js';
import { fill, h } from '../dom.js';
import { dateTime, orDash, stateLabel } from '../format.js';
import { keepLive } from '../live.js';
import { attemptStateBadge, presenceBadge } from '../ui/badge.js';
import { messageArea } from '../ui/form.js';
import { link, pageHeader, section } from '../ui/page.js';
import { attemptProgress } from '../ui/progress.js';

export function renderDevice({ main, params: [id], signal }) {
  const messages = messageArea();
  const telemetry = h('dl', { class: 'telemetry' });
  const telemetryNote = h('p', { class: 'muted' });
  const properties = h('dl', { class: 'properties' });
  const certificates = h('tbody');
  const attempts = h('div', { class: 'attempts' });
  main.append(
    pageHeader(`Device ${id}`).el, messages.el,
    section('Telemetry', telemetry, telemetryNote),
    section('Device', properties),
    section('Certificates', h('div', { class: 'table-scroll' }, h('table', { class: 'data compact' },
      h('caption', { class: 'visually-hidden' }, 'Client certificates on record, newest first'),
      h('thead', {}, h('tr', {}, ['Serial', 'Expires', 'Issued', 'Status'].map((c) => h('th', { scope: 'col' }, c)))),
      certificates))),
    section('Update attempts', attempts));

  keepLive({
    signal,
    events: `/api/events?deviceId=${encodeURIComponent(id)}&types=attempt,presence,announce`,
    load: () => call('GET', `/api/devices/${encodeURIComponent(id)}`, { signal }),
    render(d) {
      messages.clear();
      const row = (label, value) => [h('dt', {}, label), h('dd', {}, value)];
      fill(telemetry, healthTiles(d.health));
      telemetryNote.textContent = d.health ? `Reported with the announce of ${dateTime(d.health.at)}.` : 'This device has not reported health (RSSI, heap, uptime, reset reason) in an announce.';
      fill(properties,
        ...row('Type', orDash(d.type)), ...row('Version', orDash(d.version)), ...row('Presence', presenceBadge(d.online)),
        ...row('Last seen', dateTime(d.lastSeenAt)), ...row('Tags', d.tags.length ? d.tags.join(', ') : '—'), ...row('Channel', d.channel),
        ...row('Chip', orDash(d.chip)), ...row('ESP-IDF', orDash(d.idfVersion)),
        ...row('Secure version', orDash(d.secureVersion)), ...row('Running slot', orDash(d.slot)),
        ...row('Application ELF SHA-256', d.health?.elfSha256 ? h('code', { class: 'hash' }, d.health.elfSha256) : '—'));
      fill(certificates, d.certificates.length ? d.certificates.map(certificateRow) : h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No certificate on record.')));
      fill(attempts, d.attempts.length ? d.attempts.map(attemptCard) : h('p', { class: 'muted' }, 'This device has not been sent an update yet.'));
    },
    onError: (err) => messages.show('error', describeError(err)),
  });
}

function attemptCard(a) {
  const title = `${orDash(a.fromVersion)} → ${a.targetVersion}`;
  return h('article', { class: 'attempt', 'aria-label': `Update ${title}` },
    h('h3', {}, title, ' ', attemptStateBadge(a.state)),
    h('p', { class: 'muted' },
      a.rolloutId ? ['Rollout ', link(a.rolloutId, 'rollouts', a.rolloutId), ' · '] : '',
      `started ${dateTime(a.createdAt)}`, a.finishedAt ? ` · finished ${dateTime(a.finishedAt)}` : '',
      ' · update ', h('code', {}, a.updateId)),
    a.state === 'downloading' ? h('p', {}, attemptProgress(a, `Download progress of update ${a.updateId}`)) : null,
    a.error || a.reason ? h('p', { class: 'message message-error' }, [a.error, a.reason].filter(Boolean).join(': ')) : null,
    h('table', { class: 'data compact' },
      h('caption', {}, 'Steps'),
      h('thead', {}, h('tr', {}, ['Step', 'Progress', 'Detail', 'At'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, a.history.map((step) => h('tr', {},
        h('td', {}, stateLabel(step.state)),
        h('td', {}, typeof step.progress === 'number' ? `${step.progress} %` : '—'),
        h('td', {}, [step.error, step.reason].filter(Boolean).join(': ') || '—'),
        h('td', {}, h('time', { datetime: step.at }, dateTime(step.at))))))));
}

const CRASH_RESETS = new Set(['panic', 'int_wdt', 'task_wdt', 'wdt']);

/** The announce's health report as tiles; a crash reset stands out. */
function healthTiles(health) {
  if (!health) return [];
  const tile = (label, value, failing = false) => h('div', { class: failing ? 'tone-failed' : '' }, h('dt', {}, label), h('dd', {}, value));
  const kib = (n) => `${Math.round(n / 1024)} KiB`;
  return [
    health.rssi !== undefined ? tile('Wi-Fi signal', `${health.rssi} dBm`) : null,
    health.freeHeap !== undefined ? tile('Free heap', kib(health.freeHeap)) : null,
    health.minFreeHeap !== undefined ? tile('Lowest free heap', kib(health.minFreeHeap)) : null,
    health.uptimeS !== undefined ? tile('Uptime', duration(health.uptimeS)) : null,
    health.resetReason !== undefined ? tile('Last reset', health.resetReason, CRASH_RESETS.has(health.resetReason)) : null,
    health.partitionSize !== undefined ? tile('Partition size', kib(health.partitionSize)) : null,
  ];
}

function duration(s) {
  const d = Math.floor(s / 86400); const hh = Math.floor((s % 86400) / 3600); const m = Math.floor((s % 3600) / 60);
  return d ? `${d} d ${hh} h` : hh ? `${hh} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

function certificateRow(c) {
  const expired = c.notAfter !== null && new Date(c.notAfter).getTime() < Date.now();
  return h('tr', {},
    h('td', {}, h('code', {}, c.serial)),
    h('td', {}, c.notAfter ? h('time', { datetime: c.notAfter }, dateTime(c.notAfter)) : '—'),
    h('td', {}, c.createdAt ? dateTime(c.createdAt) : '—'),
    h('td', {}, c.revokedAt ? `revoked ${dateTime(c.revokedAt)}${c.reason ? ` (${c.reason})` : ''}` : expired ? 'expired' : 'valid'));
}
