// Steering a rollout from its page: edit its settings, retry its failed devices, promote the next
// wave; and what the page says about why a wave waits (skipped: offline, deferred, retried). The
// server validates every change; its message is shown as is.
import { call, describeError } from '../api.js';
import { announce, h } from '../dom.js';
import { OPERATOR_RETRYABLE_STATES } from '../states.js';
import { confirmDialog } from '../ui/confirm.js';
import { field, whileBusy } from '../ui/form.js';
import { section } from '../ui/page.js';

/** Whether each steering control applies to this rollout (the server answers 409 otherwise). */
export function steeringAllowed(r) {
  const active = r.state === 'running' || r.state === 'paused';
  return {
    edit: active || r.state === 'scheduled',
    promote: active && r.currentWave < r.waveSizes.length - 1,
    retry: active && retryable(r) > 0,
  };
}

/** Devices whose latest attempt an operator may retry. */
export function retryable(r) {
  return (r.devices ?? []).filter((d) => OPERATOR_RETRYABLE_STATES.has(d.state)).length;
}

/** "2 skipped: offline · 3 deferrals · 1 retried by an operator", or ''. */
export function steeringSummary(r) {
  return [r.skipped && `${r.skipped} skipped: offline`, r.deferrals && `${r.deferrals} deferral${r.deferrals === 1 ? '' : 's'}`,
    r.retried && `${r.retried} retried by an operator`].filter(Boolean).join(' · ');
}

/**
 * The buttons (for the page header) and the edit panel. `current()` gives the rollout as last
 * loaded; `changed()` reloads it after a change.
 */
export function steeringControls({ id, signal, messages, current, changed }) {
  const buttons = {
    edit: h('button', { type: 'button', hidden: true, class: 'button-secondary', 'aria-expanded': 'false', onclick: () => toggleEdit() }, 'Edit settings'),
    promote: h('button', { type: 'button', hidden: true, class: 'button-secondary', onclick: () => promote() }, 'Promote next wave'),
    retry: h('button', { type: 'button', hidden: true, class: 'button-secondary', onclick: () => retry() }, 'Retry failed'),
  };
  const form = editForm(async (body) => {
    const view = await call('PATCH', `/api/rollouts/${encodeURIComponent(id)}`, { body, signal });
    const what = view.changed.length ? `Settings changed: ${view.changed.join('; ')}.` : 'Nothing changed.';
    messages.show('success', what);
    announce(what);
    closeEdit();
    changed();
  }, (err) => messages.show('error', describeError(err)));
  const panel = section('Edit settings', h('p', { class: 'muted' }, 'Validated as when the rollout was created; waves that have started keep their sizes. An empty limit removes it. Recorded in the history and the audit log.'), form.el);
  panel.hidden = true;

  function toggleEdit() {
    if (!panel.hidden) return closeEdit();
    const r = current();
    if (!r) return;
    form.fill(r);
    panel.hidden = false;
    buttons.edit.setAttribute('aria-expanded', 'true');
    form.focus();
  }

  function closeEdit() {
    panel.hidden = true;
    buttons.edit.setAttribute('aria-expanded', 'false');
  }

  async function promote() {
    const r = current();
    if (!r) return;
    const next = r.currentWave + 2;
    const go = await confirmDialog({
      title: `Start wave ${next} of ${r.waveSizes.length} now?`,
      message: 'Its devices are offered the update without waiting for the current wave to succeed or soak. A paused rollout stays paused until you resume it.',
      confirmLabel: `Start wave ${next}`,
    });
    if (go) await act(buttons.promote, 'promote', () => `Wave ${next} started.`);
  }

  async function retry() {
    const r = current();
    if (!r) return;
    const n = retryable(r);
    const go = await confirmDialog({
      title: `Retry ${n} failed device${n === 1 ? '' : 's'}?`,
      message: 'Each device whose latest attempt failed, timed out or rolled back gets a new attempt, without back-off. A paused rollout sends them when you resume it.',
      confirmLabel: 'Retry failed',
    });
    if (go) await act(buttons.retry, 'retry', (view) => `${view.retried} device${view.retried === 1 ? '' : 's'} will get a new attempt.`);
  }

  async function act(button, action, done) {
    button.disabled = true;
    try {
      const view = await call('POST', `/api/rollouts/${encodeURIComponent(id)}/${action}`, { signal });
      messages.show('success', done(view));
      announce(done(view));
      changed();
    } catch (err) {
      if (err.name !== 'AbortError') messages.show('error', describeError(err));
    } finally {
      button.disabled = false;
    }
  }

  return {
    buttons: Object.values(buttons),
    panel,
    render(r, mayChange) {
      const allowed = mayChange ? steeringAllowed(r) : {};
      for (const [action, button] of Object.entries(buttons)) button.hidden = !allowed[action];
      if (!allowed.edit) closeEdit();
    },
  };
}

/** The edit form: the current settings filled in; submits only what differs from them. */
function editForm(submit, fail) {
  const number = (attrs = {}) => h('input', { type: 'number', min: 0, inputmode: 'numeric', ...attrs });
  const inputs = {
    waves: h('input', { type: 'text', autocomplete: 'off', placeholder: '10, 50, 100' }),
    minSuccessRatio: number({ step: 0.01, max: 1, inputmode: 'decimal' }),
    soakSeconds: number(),
    maxPerMinute: number({ min: 1 }),
    failCount: number({ min: 1 }),
    failPercent: number({ max: 100, step: 0.1, inputmode: 'decimal' }),
    waveDeadlineSeconds: number({ min: 1 }),
    windowStart: h('input', { type: 'time' }),
    windowEnd: h('input', { type: 'time' }),
  };
  const save = h('button', { type: 'submit', class: 'button-primary' }, 'Save settings');
  const el = h('form', { class: 'rollout-edit', novalidate: true },
    h('div', { class: 'field-row' },
      field('Cumulative wave sizes', inputs.waves, 'Started waves keep their sizes'),
      field('Minimum success ratio', inputs.minSuccessRatio, 'Of a wave, 0–1'),
      field('Soak time (s)', inputs.soakSeconds)),
    h('div', { class: 'field-row' },
      field('Max commands per minute', inputs.maxPerMinute, 'Empty: no limit'),
      field('Failure threshold: count', inputs.failCount, 'Counted since the last resume'),
      field('Failure threshold: percent', inputs.failPercent)),
    h('div', { class: 'field-row' },
      field('Wave deadline (s)', inputs.waveDeadlineSeconds, 'Offline devices are skipped after it; empty: wait for ever'),
      field('Maintenance window from (UTC)', inputs.windowStart),
      field('to (UTC)', inputs.windowEnd)),
    h('div', { class: 'actions' }, save));
  let original = {};

  const value = (input) => (input.value.trim() === '' ? null : Number(input.value));
  function read() {
    const threshold = value(inputs.failCount) === null && value(inputs.failPercent) === null ? null
      : JSON.parse(JSON.stringify({ count: value(inputs.failCount) ?? undefined, percent: value(inputs.failPercent) ?? undefined, minSample: original.failureThreshold?.minSample }));
    const waves = inputs.waves.value.split(',').map((x) => x.trim()).filter(Boolean).map(Number);
    return {
      waves, minSuccessRatio: value(inputs.minSuccessRatio), soakSeconds: value(inputs.soakSeconds), maxPerMinute: value(inputs.maxPerMinute),
      failureThreshold: threshold, waveDeadlineSeconds: value(inputs.waveDeadlineSeconds),
      maintenanceWindow: inputs.windowStart.value || inputs.windowEnd.value ? { start: inputs.windowStart.value, end: inputs.windowEnd.value } : null,
    };
  }

  el.addEventListener('submit', (event) => {
    event.preventDefault();
    const now = read();
    // Only what differs, so an edit never rewrites a setting nobody touched.
    const body = Object.fromEntries(Object.entries(now).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(original[k])
      && !((k === 'minSuccessRatio' || k === 'soakSeconds') && v === null)));
    whileBusy(el, () => submit(body)).catch((err) => { if (err.name !== 'AbortError') fail(err); });
  });

  return {
    el,
    focus() { inputs.waves.focus(); },
    fill(r) {
      const p = r.policy;
      original = {
        waves: r.waveSizes, minSuccessRatio: p.minSuccessRatio ?? null, soakSeconds: p.soakSeconds ?? null, maxPerMinute: p.maxPerMinute ?? null,
        failureThreshold: p.failureThreshold ?? null, waveDeadlineSeconds: p.waveDeadlineSeconds ?? null, maintenanceWindow: p.maintenanceWindow ?? null,
      };
      inputs.waves.value = r.waveSizes.join(', ');
      const set = (input, v) => { input.value = v === null || v === undefined ? '' : String(v); };
      set(inputs.minSuccessRatio, original.minSuccessRatio);
      set(inputs.soakSeconds, original.soakSeconds);
      set(inputs.maxPerMinute, original.maxPerMinute);
      set(inputs.failCount, original.failureThreshold?.count);
      set(inputs.failPercent, original.failureThreshold?.percent);
      set(inputs.waveDeadlineSeconds, original.waveDeadlineSeconds);
      set(inputs.windowStart, original.maintenanceWindow?.start);
      set(inputs.windowEnd, original.maintenanceWindow?.end);
      // The form's own copy, normalised as read() returns it, is what "unchanged" compares against.
      original = { ...read() };
    },
  };
}

/** A device's state cell: skipped devices say why; an operator's retry is noted. */
export function deviceStanding(d) {
  if (d.standing === 'skipped') return h('span', { class: 'badge tone-cancelled' }, `skipped: ${d.skipReason ?? 'offline'}`);
  return null;
}

export function retryNote(d) {
  return d.retryGranted ? h('span', { class: 'muted' }, ' · retry granted') : '';
}

/** The status line's wave part: what the wave waits for while the rollout is active. */
export function waitingText(r, fallback) {
  return r.waiting?.text ?? fallback;
}

