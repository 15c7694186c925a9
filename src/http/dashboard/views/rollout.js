// One rollout: live progress by state, what its wave waits for, its waves, every device's attempt,
// its history, and the controls its state allows: pause / resume / cancel, and edit / promote /
// retry (rollout-steering.js).
import { call, describeError, session } from '../api.js';
import { announce, fill, h } from '../dom.js';
import { dateTime, orDash, stateLabel } from '../format.js';
import { keepLive } from '../live.js';
import { allowedControls, applyAttemptEvent, applyRolloutEvent, groupOf, summarize, summarizeWave, waveLabel } from '../rollout-model.js';
import { ATTEMPT_STATES } from '../states.js';
import { attemptStateBadge, rolloutStateBadge, waveStateBadge } from '../ui/badge.js';
import { confirmDialog } from '../ui/confirm.js';
import { messageArea } from '../ui/form.js';
import { link, pageHeader, section } from '../ui/page.js';
import { attemptProgress, rolloutProgress } from '../ui/progress.js';
import { cell, keyedRows } from '../ui/table.js';
import { deviceStanding, retryNote, steeringControls, steeringSummary, waitingText } from './rollout-steering.js';
import { rolloutTimelineChart } from '../ui/history-charts.js';

const CONTROL_LABELS = { pause: 'Pause', resume: 'Resume', cancel: 'Cancel rollout' };
const CONTROL_DONE = { pause: 'paused', resume: 'resumed', cancel: 'cancelled' };

export function renderRollout({ main, params: [id], signal }) {
  const messages = messageArea();
  const buttons = Object.fromEntries(Object.entries(CONTROL_LABELS).map(([action, label]) =>
    [action, h('button', { type: 'button', hidden: true, class: action === 'cancel' ? 'button-danger' : 'button-secondary', onclick: () => control(action) }, label)]));
  const steering = steeringControls({ id, signal, messages, current: () => live.current(), changed: () => live.reload() });
  const header = pageHeader(`Rollout ${id}`, { actions: [...steering.buttons, ...Object.values(buttons)] });
  const steeringLine = h('p', { class: 'muted steering-summary' });
  const status = h('p', { class: 'rollout-status' });
  const progress = rolloutProgress('Rollout progress');
  const counts = h('dl', { class: 'state-counts' });
  const waves = h('tbody');
  const devices = h('tbody');
  const history = h('ol', { class: 'history' });
  const plan = h('dl', { class: 'properties' });
  const syncWaves = keyedRows(waves, { key: (w) => w.index, create: waveRow, empty: 'No waves.', columns: 7 });
  const syncDevices = keyedRows(devices, { key: (d) => d.deviceId, create: deviceRow, empty: 'No device is targeted.', columns: 7 });

  const timeline = rolloutTimelineChart(id, signal);
  main.append(
    header.el, messages.el, steering.panel,
    section('Progress', status, steeringLine, h('div', { id: 'rollout-summary' }, progress.el), counts, timeline.el),
    section('Waves', h('div', { class: 'table-scroll' }, table(['Wave', 'Planned (cumulative)', 'Devices', 'Succeeded', 'Failed', 'Skipped', 'Progress'], waves))),
    section('Plan', plan),
    section('Devices', h('div', { class: 'table-scroll' }, table(['Device', 'Wave', 'From', 'State', 'Progress', 'Error', 'Updated'], devices))),
    section('History', history));

  const live = keepLive({
    signal,
    events: `/api/events?rolloutId=${encodeURIComponent(id)}&types=attempt,rollout`,
    load: () => call('GET', `/api/rollouts/${encodeURIComponent(id)}`, { signal }),
    render,
    onEvent: (type, event, rollout) => (type === 'attempt' ? applyAttemptEvent(rollout, event) : type === 'rollout' && applyRolloutEvent(rollout, event)),
    onError: (err) => messages.show('error', describeError(err)),
  });

  function render(r) {
    timeline.poke();
    header.title.textContent = r.name ? `Rollout ${r.name}` : `Rollout ${r.id}`;
    document.title = `${header.title.textContent} · mqota`;
    fill(header.subtitle, `${r.firmware.type} ${r.firmware.version} · created by ${orDash(r.createdBy)}, ${dateTime(r.createdAt)}`);
    const allowed = session.mayChange ? allowedControls(r.state) : [];
    for (const [action, button] of Object.entries(buttons)) button.hidden = !allowed.includes(action);
    steering.render(r, session.mayChange);
    const wave = waitingText(r, waveLabel(r));
    fill(status, rolloutStateBadge(r.state),
      wave ? h('span', { class: 'waiting' }, ` ${wave}`) : '',
      r.state === 'scheduled' && r.startAt ? ` · starts ${dateTime(r.startAt)}` : '',
      r.finishedAt ? ` · finished ${dateTime(r.finishedAt)}` : '',
      r.reason ? h('span', { class: 'reason' }, ` · ${r.reason}`) : '');
    fill(steeringLine, steeringSummary(r));
    steeringLine.hidden = !steeringLine.textContent;
    progress.update(summarize(r));
    fill(counts, ATTEMPT_STATES.map((st) =>
      h('div', { class: r.counts[st] > 0 ? 'count' : 'count zero' }, h('dt', {}, stateLabel(st)), h('dd', {}, r.counts[st]))));
    const unit = r.waveUnit === 'count' ? '' : ' %';
    syncWaves(r.waves.map((w) => ({ ...w, planned: `${r.waveSizes[w.index]}${unit}` })));
    syncDevices(r.devices);
    fill(plan, planItems(r));
    fill(history, r.history.length ? r.history.map(historyItem) : h('li', { class: 'muted' }, 'Nothing recorded yet.'));
  }

  async function control(action) {
    const rollout = live.current();
    if (action === 'cancel') {
      const go = await confirmDialog({
        title: 'Cancel this rollout?',
        message: 'Devices that have not started are told to drop the update; updates already in progress finish and are recorded. A cancelled rollout cannot be resumed.',
        confirmLabel: 'Cancel rollout', danger: true,
      });
      if (!go) return;
    }
    buttons[action].disabled = true;
    try {
      const view = await call('POST', `/api/rollouts/${encodeURIComponent(id)}/${action}`, { signal });
      messages.show('success', `Rollout ${CONTROL_DONE[action]}.`);
      announce(`Rollout ${CONTROL_DONE[action]}`);
      if (rollout) { Object.assign(rollout, { state: view.state, reason: view.reason }); render(rollout); }
      // The pressed button may now be hidden; keep keyboard focus on the page's controls.
      Object.values(buttons).find((b) => !b.hidden)?.focus();
      live.reload();
    } catch (err) {
      if (err.name !== 'AbortError') messages.show('error', describeError(err));
    } finally {
      buttons[action].disabled = false;
    }
  }
}

function table(columns, tbody) {
  return h('table', { class: 'data' }, h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))), tbody);
}

function waveRow(w) {
  const [name, size, devices, succeeded, failed, skipped] = Array.from({ length: 6 }, () => cell());
  const progress = rolloutProgress(`Progress of wave ${w.index + 1}`);
  return {
    el: h('tr', {}, name.el, size.el, devices.el, succeeded.el, failed.el, skipped.el, h('td', { class: 'progress-cell' }, progress.el)),
    update(w) {
      name.set([w.index, w.state], () => [`Wave ${w.index + 1} `, waveStateBadge(w.state)]);
      size.set(w.planned);
      devices.set(w.devices);
      succeeded.set(w.succeeded);
      failed.set(w.failed);
      skipped.set(w.skipped ?? 0);
      progress.update(summarizeWave(w));
    },
  };
}

function deviceRow(d) {
  const [wave, from, state, progress, error, updated] = Array.from({ length: 6 }, () => cell());
  return {
    el: h('tr', {}, h('td', {}, link(d.deviceId, 'devices', d.deviceId)), wave.el, from.el, state.el, progress.el, error.el, updated.el),
    update(d) {
      wave.set(d.wave, (w) => (typeof w === 'number' ? String(w + 1) : '—'));
      from.set(d.fromVersion, orDash);
      state.set([d.state, d.retry, d.standing, d.retryGranted], () => deviceStanding(d)
        ?? (d.state ? [attemptStateBadge(d.state), d.retry ? ` retry ${d.retry}` : '', retryNote(d)] : h('span', { class: 'muted' }, 'not started')));
      // Download progress means something only while the device is at it.
      progress.set([d.state, d.progress], () => (groupOf(d.state) === 'active' ? attemptProgress(d, `Download progress of ${d.deviceId}`) : '—'));
      error.set(d.error, orDash);
      updated.set(d.updatedAt, (at) => h('time', { datetime: at ?? '' }, dateTime(at)));
    },
  };
}

function historyItem(entry) {
  return h('li', {},
    h('time', { datetime: entry.at }, dateTime(entry.at)), ' ', rolloutStateBadge(entry.state),
    typeof entry.wave === 'number' ? ` wave ${entry.wave + 1}` : '',
    entry.actor ? ` by ${entry.actor}` : '',
    entry.reason ? ` · ${entry.reason}` : '');
}

const POLICY_LABELS = {
  minSuccessRatio: 'Minimum success ratio', soakSeconds: 'Soak time (s)', maxPerMinute: 'Max commands per minute',
  failureThreshold: 'Failure threshold', onFailureThreshold: 'At the threshold', attemptTimeoutSeconds: 'Attempt timeout (s)',
  maxRetries: 'Retries per device', retryBackoffSeconds: 'Retry backoff (s)', maintenanceWindow: 'Maintenance window (UTC)', waveDeadlineSeconds: 'Wave deadline (s)',
  allowDowngrade: 'Downgrade allowed', downgradeReason: 'Downgrade reason',
};

/** Targets, waves, schedule and policy as label/value pairs. */
function planItems(r) {
  const row = (label, value) => [h('dt', {}, label), h('dd', {}, value)];
  const t = r.targeting;
  const targets = t.deviceIds ? `${t.deviceIds.length} chosen device(s)` : `every ${r.firmware.type} device`;
  const narrowing = [t.tags?.length && `tags ${t.tags.join(', ')}`, t.versionRange && `running ${t.versionRange}`, t.channel && `channel ${t.channel}`].filter(Boolean);
  const unit = r.waveUnit === 'count' ? '' : ' %';
  return [
    row('Targets', `${targets}${narrowing.length ? `, ${narrowing.join(', ')}` : ''} · ${r.targets} in the target set`),
    row('Waves', r.waveSizes.map((x) => `${x}${unit}`).join(' → ')),
    r.startAt ? row('Start at', dateTime(r.startAt)) : [],
    Object.keys(POLICY_LABELS).filter((key) => r.policy[key] !== undefined && r.policy[key] !== null)
      .map((key) => row(POLICY_LABELS[key], policyValue(r.policy[key]))),
  ].flat();
}

function policyValue(value) {
  if (value && typeof value === 'object') return Object.entries(value).map(([k, v]) => `${k} ${v}`).join(', ');
  return typeof value === 'boolean' ? (value ? 'yes' : 'no') : String(value);
}
