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
  const properties = h('dl', { class: 'properties' });
  const attempts = h('div', { class: 'attempts' });
  main.append(
    pageHeader(`Device ${id}`).el, messages.el,
    section('Device', properties),
    section('Update attempts', attempts));

  keepLive({
    signal,
    events: `/api/events?deviceId=${encodeURIComponent(id)}&types=attempt,presence,announce`,
    load: () => call('GET', `/api/devices/${encodeURIComponent(id)}`, { signal }),
    render(d) {
      messages.clear();
      const row = (label, value) => [h('dt', {}, label), h('dd', {}, value)];
      fill(properties,
        ...row('Type', orDash(d.type)), ...row('Version', orDash(d.version)), ...row('Presence', presenceBadge(d.online)),
        ...row('Last seen', dateTime(d.lastSeenAt)), ...row('Chip', orDash(d.chip)), ...row('ESP-IDF', orDash(d.idfVersion)),
        ...row('Secure version', orDash(d.secureVersion)), ...row('Running slot', orDash(d.slot)));
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
