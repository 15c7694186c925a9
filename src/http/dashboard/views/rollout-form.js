// Starting a rollout: firmware, targets (every device of the type, narrowed by filters, or a
// chosen set), cumulative waves, and the policy. Only filled-in fields are sent; the server
// validates everything and its message is shown as is.
import { call, describeError } from '../api.js';
import { announce, fill, h } from '../dom.js';
import { field, messageArea, whileBusy } from '../ui/form.js';
import { pageHeader, section } from '../ui/page.js';
import { presenceBadge } from '../ui/badge.js';

export function renderRolloutForm({ main, query, signal }) {
  const messages = messageArea();
  const firmware = h('select', { required: true }, h('option', { value: '' }, 'Loading…'));
  const name = h('input', { type: 'text', autocomplete: 'off', class: 'wide' });
  const everyDevice = h('input', { type: 'radio', name: 'target-mode', value: 'all', checked: true, id: 'target-all' });
  const chosenDevices = h('input', { type: 'radio', name: 'target-mode', value: 'chosen', id: 'target-chosen' });
  const tags = h('input', { type: 'text', autocomplete: 'off', placeholder: 'e.g. lab, building-2' });
  const versionRange = h('input', { type: 'text', autocomplete: 'off', placeholder: 'e.g. <1.2.0' });
  const channel = h('input', { type: 'text', autocomplete: 'off' });
  const filters = h('div', { class: 'field-row' },
    field('Tags', tags, 'Devices carrying all of these (comma-separated)'),
    field('Running versions', versionRange, 'A semver range'),
    field('Channel', channel, 'Devices following this channel'));
  const deviceList = h('div', { class: 'device-choice' });
  const devicePicker = h('fieldset', { hidden: true }, h('legend', {}, 'Devices'), deviceList);
  const targetSummary = h('p', { class: 'muted', 'aria-live': 'polite' });
  const waves = h('input', { type: 'text', autocomplete: 'off', placeholder: '1, 10, 50, 100' });
  const waveUnit = h('select', {}, h('option', { value: 'percent' }, 'percent of targets'), h('option', { value: 'count' }, 'devices'));
  const policy = policyFields();
  const submit = h('button', { type: 'submit', class: 'button-primary' }, 'Start rollout');
  let devicesOfType = [];

  const form = h('form', { class: 'rollout-form', novalidate: true },
    field('Firmware', firmware),
    field('Name', name, 'Optional; shown instead of the rollout id'),
    h('fieldset', {},
      h('legend', {}, 'Targets'),
      h('div', { class: 'choice' }, everyDevice, h('label', { for: 'target-all' }, 'Every device of the firmware\'s type')),
      h('div', { class: 'choice' }, chosenDevices, h('label', { for: 'target-chosen' }, 'Only the devices I choose')),
      filters, devicePicker, targetSummary),
    h('fieldset', {},
      h('legend', {}, 'Waves'),
      h('div', { class: 'field-row' },
        field('Cumulative wave sizes', waves, 'Each wave includes the ones before; leave empty for one wave of every target'),
        field('Unit', waveUnit))),
    h('details', {}, h('summary', {}, 'Schedule, pacing and safety'), policy.el),
    messages.el,
    h('div', { class: 'actions' }, submit, h('a', { href: '#/rollouts', class: 'button button-quiet' }, 'Back to rollouts')));

  main.append(pageHeader('New rollout').el, section('Rollout', form));

  call('GET', '/api/firmware', { signal }).then((list) => {
    fill(firmware, h('option', { value: '' }, list.length ? 'Choose firmware…' : 'No firmware uploaded yet'),
      list.map((fw) => h('option', { value: fw.id, 'data-type': fw.type }, `${fw.type} ${fw.version} (${fw.channel})`)));
    if (query.get('firmware')) firmware.value = query.get('firmware');
    return loadDevices();
  }).catch((err) => { if (err.name !== 'AbortError') messages.show('error', describeError(err)); });

  async function loadDevices() {
    const type = firmware.selectedOptions[0]?.dataset.type;
    devicesOfType = type ? await call('GET', `/api/devices?type=${encodeURIComponent(type)}`, { signal }) : [];
    fill(deviceList, devicesOfType.length ? devicesOfType.map((d, i) => {
      const box = h('input', { type: 'checkbox', value: d.id, id: `choose-${i}`, onchange: showTargets });
      return h('div', { class: 'choice' }, box, h('label', { for: box.id }, d.id, ' ', h('span', { class: 'muted' }, d.version ?? 'no version'), ' ', presenceBadge(d.online)));
    }) : h('p', { class: 'muted' }, type ? `No device of type ${type} is known yet.` : 'Choose a firmware first.'));
    showTargets();
  }

  function chosen() {
    return [...deviceList.querySelectorAll('input[type=checkbox]:checked')].map((c) => c.value);
  }

  function showTargets() {
    const all = everyDevice.checked;
    filters.hidden = !all;
    devicePicker.hidden = all;
    const type = firmware.selectedOptions[0]?.dataset.type;
    if (!type) targetSummary.textContent = '';
    else if (all) targetSummary.textContent = `${devicesOfType.length} device(s) of type ${type} known, ${devicesOfType.filter((d) => d.online).length} online; filters narrow this further.`;
    else targetSummary.textContent = `${chosen().length} of ${devicesOfType.length} device(s) chosen.`;
  }

  firmware.addEventListener('change', () => loadDevices().catch((err) => messages.show('error', describeError(err))));
  everyDevice.addEventListener('change', showTargets);
  chosenDevices.addEventListener('change', showTargets);
  policy.startAt.addEventListener('input', () => { submit.textContent = policy.startAt.value ? 'Schedule rollout' : 'Start rollout'; });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    let body;
    try {
      body = requestBody();
    } catch (err) {
      messages.show('error', err.message);
      return;
    }
    await whileBusy(form, async () => {
      try {
        const rollout = await call('POST', '/api/rollouts', { body, signal });
        announce('Rollout created');
        location.hash = `#/rollouts/${encodeURIComponent(rollout.id)}`;
      } catch (err) {
        if (err.name !== 'AbortError') messages.show('error', `The rollout was not created: ${describeError(err)}`);
      }
    });
  });

  function requestBody() {
    if (!firmware.value) throw new Error('Choose the firmware to roll out.');
    const body = { firmwareId: firmware.value };
    if (name.value.trim()) body.name = name.value.trim();
    if (everyDevice.checked) {
      const tagList = tags.value.split(',').map((t) => t.trim()).filter(Boolean);
      if (tagList.length) body.tags = tagList;
      if (versionRange.value.trim()) body.versionRange = versionRange.value.trim();
      if (channel.value.trim()) body.channel = channel.value.trim();
    } else {
      const ids = chosen();
      if (!ids.length) throw new Error('Choose at least one device, or target every device of the type.');
      body.deviceIds = ids;
    }
    if (waves.value.trim()) {
      const sizes = waves.value.split(/[\s,]+/).filter(Boolean).map(Number);
      if (sizes.some((n) => !Number.isFinite(n) || n <= 0) || sizes.some((n, i) => i > 0 && n <= sizes[i - 1])) {
        throw new Error('Wave sizes are positive numbers, each larger than the one before (e.g. 1, 10, 50, 100).');
      }
      body.waves = sizes;
      body.waveUnit = waveUnit.value;
    }
    return { ...body, ...policy.values() };
  }
}

/** The optional policy fields, and the part of the request body they fill. */
function policyFields() {
  const number = (attrs = {}) => h('input', { type: 'number', min: 0, inputmode: 'numeric', ...attrs });
  const startAt = h('input', { type: 'datetime-local' });
  const windowStart = h('input', { type: 'time' });
  const windowEnd = h('input', { type: 'time' });
  const minSuccessRatio = number({ step: 0.01, max: 1, inputmode: 'decimal' });
  const soakSeconds = number();
  const maxPerMinute = number({ min: 1 });
  const failCount = number();
  const failPercent = number({ max: 100, step: 0.1, inputmode: 'decimal' });
  const failMinSample = number();
  const attemptTimeoutSeconds = number({ min: 1 });
  const maxRetries = number();
  const retryBackoffSeconds = number();
  const allowDowngrade = h('input', { type: 'checkbox', id: 'allow-downgrade' });
  const downgradeReason = h('input', { type: 'text', autocomplete: 'off', class: 'wide' });

  const el = h('div', { class: 'policy' },
    h('div', { class: 'field-row' },
      field('Start at', startAt, 'Your local time; empty starts now'),
      field('Maintenance window from (UTC)', windowStart),
      field('to (UTC)', windowEnd)),
    h('div', { class: 'field-row' },
      field('Minimum success ratio', minSuccessRatio, 'Of a wave, 0–1, before the next starts'),
      field('Soak time (s)', soakSeconds, 'Wait after a wave before the next'),
      field('Max commands per minute', maxPerMinute)),
    h('fieldset', {}, h('legend', {}, 'Abort when failures reach'),
      h('div', { class: 'field-row' },
        field('Count', failCount), field('Percent', failPercent), field('Minimum sample', failMinSample, 'Attempts finished before the percentage counts'))),
    h('div', { class: 'field-row' },
      field('Attempt timeout (s)', attemptTimeoutSeconds),
      field('Retries per device', maxRetries),
      field('Retry backoff (s)', retryBackoffSeconds)),
    h('div', { class: 'choice' }, allowDowngrade, h('label', { for: 'allow-downgrade' }, 'Allow a downgrade (an older version than devices run)')),
    field('Downgrade reason', downgradeReason, 'Required with a downgrade; recorded in the history'));

  const nonNegative = (input, label) => {
    if (input.value === '') return undefined;
    const n = Number(input.value);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${label} must be a number of 0 or more.`);
    return n;
  };

  return {
    el, startAt,
    values() {
      const v = {
        minSuccessRatio: nonNegative(minSuccessRatio, 'Minimum success ratio'),
        soakSeconds: nonNegative(soakSeconds, 'Soak time'),
        maxPerMinute: nonNegative(maxPerMinute, 'Max commands per minute'),
        attemptTimeoutSeconds: nonNegative(attemptTimeoutSeconds, 'Attempt timeout'),
        maxRetries: nonNegative(maxRetries, 'Retries per device'),
        retryBackoffSeconds: nonNegative(retryBackoffSeconds, 'Retry backoff'),
      };
      const threshold = { count: nonNegative(failCount, 'Failure count'), percent: nonNegative(failPercent, 'Failure percent'), minSample: nonNegative(failMinSample, 'Minimum sample') };
      if (Object.values(threshold).some((x) => x !== undefined)) v.failureThreshold = threshold;
      if (startAt.value) v.startAt = new Date(startAt.value).toISOString();
      if (windowStart.value || windowEnd.value) {
        if (!windowStart.value || !windowEnd.value) throw new Error('A maintenance window needs both a start and an end time.');
        v.maintenanceWindow = { start: windowStart.value, end: windowEnd.value };
      }
      if (allowDowngrade.checked) {
        v.allowDowngrade = true;
        if (downgradeReason.value.trim()) v.downgradeReason = downgradeReason.value.trim();
      }
      // JSON.stringify drops the undefined ones: only what the operator filled in is sent.
      return v;
    },
  };
}
