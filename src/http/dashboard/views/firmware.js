// Firmware catalog: the uploaded images, and an upload form that shows what the server read from
// the ESP-IDF image header (or why it refused the file).
import { call, describeError, session } from '../api.js';
import { announce, h } from '../dom.js';
import { bytes, dateTime, orDash, shortHash } from '../format.js';
import { keepLive } from '../live.js';
import { field, messageArea, whileBusy } from '../ui/form.js';
import { pageHeader, section } from '../ui/page.js';
import { cell, keyedRows } from '../ui/table.js';
import { confirmDialog } from '../ui/confirm.js';

export function renderFirmware({ main, signal }) {
  const messages = messageArea();
  const tbody = h('tbody');
  const table = h('table', { class: 'data' },
    h('caption', { class: 'visually-hidden' }, 'Firmware catalog, newest first'),
    h('thead', {}, h('tr', {}, ['Type', 'Version', 'Channel', 'Chip', 'ESP-IDF', 'Signed by', 'Size', 'SHA-256', 'Uploaded', ''].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const actions = { remove: (fw) => remove(fw) };
  const sync = keyedRows(tbody, { key: (fw) => fw.id, create: () => firmwareRow(actions), empty: 'No firmware uploaded yet.', columns: 10 });
  const live = keepLive({
    signal,
    events: null,
    async load() {
      const [firmware, devices] = await Promise.all([call('GET', '/api/firmware', { signal }), call('GET', '/api/devices', { signal })]);
      // "Roll out" only where a rollout could reach a device: a type with none would target nothing.
      const withDevices = new Set(devices.map((d) => d.type));
      return firmware.map((fw) => ({ ...fw, hasDevices: withDevices.has(fw.type) }));
    },
    render: sync,
    onError: (err) => messages.show('error', describeError(err)),
  });
  async function remove(fw) {
    const go = await confirmDialog({
      title: `Delete ${fw.type} ${fw.version}?`,
      message: 'The image file is deleted and the catalog no longer offers it. Rollouts that used it keep their history. A firmware that a running rollout uses cannot be deleted.',
      confirmLabel: 'Delete firmware', danger: true,
    });
    if (!go) return;
    try {
      await call('DELETE', `/api/firmware/${encodeURIComponent(fw.id)}`, { signal });
      messages.show('success', `Deleted ${fw.type} ${fw.version}.`);
      announce(`Deleted ${fw.type} ${fw.version}`);
      live.reload();
    } catch (err) {
      if (err.name !== 'AbortError') messages.show('error', `Not deleted: ${describeError(err)}`);
    }
  }

  main.append(
    pageHeader('Firmware').el,
    ...(session.mayChange ? [uploadForm(signal, () => live.reload())] : []),
    section('Catalog', messages.el, h('div', { class: 'table-scroll' }, table)));
}

function firmwareRow(actions) {
  const cells = Array.from({ length: 10 }, () => cell());
  return {
    el: h('tr', {}, cells.map((c) => c.el)),
    update(fw) {
      cells[0].set(fw.type);
      // The image's own version string, when the catalog's (normalised, or given in the form) differs.
      const own = fw.image?.version && fw.image.version !== fw.version ? fw.image.version : null;
      cells[1].set([fw.version, own], ([v, o]) => (o ? [v, ' ', h('small', { class: 'muted', title: 'the version string in the image' }, `(image: ${o})`)] : v));
      cells[2].set(fw.channel);
      cells[3].set(fw.image?.chip ?? null, orDash);
      cells[4].set(fw.image?.idfVersion ?? null, orDash);
      cells[5].set(signer(fw), orDash);
      cells[6].set(fw.size, bytes);
      cells[7].set(fw.sha256, (sha) => h('code', { title: sha }, shortHash(sha)));
      cells[8].set(fw.createdAt, dateTime);
      cells[9].set(session.mayChange ? [fw.id, fw.hasDevices] : null, (v) => (v ? h('span', { class: 'row-actions' },
        v[1] ? h('a', { href: `#/rollouts/new?firmware=${encodeURIComponent(v[0])}`, 'aria-label': `Roll out ${fw.type} ${fw.version}` }, 'Roll out')
          : h('span', { class: 'muted', title: `no ${fw.type} device is known yet` }, 'no devices'),
        ' ',
        h('button', { type: 'button', class: 'button-quiet', 'aria-label': `Delete ${fw.type} ${fw.version}`, onclick: () => actions.remove(fw) }, 'Delete')) : ''));
    },
  };
}

function uploadForm(signal, onUploaded) {
  const file = h('input', { type: 'file', name: 'file', required: true, accept: '.bin,application/octet-stream' });
  const type = h('input', { type: 'text', name: 'type', pattern: '[A-Za-z0-9_.\\-]{1,64}', autocomplete: 'off' });
  const version = h('input', { type: 'text', name: 'version', autocomplete: 'off' });
  const channel = h('input', { type: 'text', name: 'channel', placeholder: 'stable', autocomplete: 'off' });
  const notes = h('input', { type: 'text', name: 'notes', autocomplete: 'off', class: 'wide' });
  const messages = messageArea();
  const result = h('div');
  const form = h('form', { class: 'upload', novalidate: true },
    field('Image file', file, 'An ESP-IDF application image (.bin). Type and version are read from it.'),
    h('div', { class: 'field-row' },
      field('Type', type, 'Only if the image has no project name'),
      field('Version', version, 'Only for images without a semantic version'),
      field('Channel', channel)),
    field('Notes', notes),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'button-primary' }, 'Upload')),
    messages.el, result);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    result.replaceChildren();
    if (!file.files.length) {
      messages.show('error', 'Choose an image file to upload.');
      file.focus();
      return;
    }
    const body = new FormData();
    for (const input of [type, version, channel, notes]) if (input.value.trim()) body.set(input.name, input.value.trim());
    body.set('file', file.files[0]);
    messages.show('info', `Uploading ${file.files[0].name} (${bytes(file.files[0].size)})…`);
    await whileBusy(form, async () => {
      try {
        const fw = await call('POST', '/api/firmware', { form: body, signal });
        messages.show('success', `Uploaded ${fw.type} ${fw.version}.`);
        announce(`Uploaded ${fw.type} ${fw.version}`);
        result.replaceChildren(identified(fw));
        form.reset();
        onUploaded();
      } catch (err) {
        if (err.name !== 'AbortError') messages.show('error', `Upload refused: ${describeError(err)}`);
      }
    });
  });
  return section('Upload firmware', form);
}

/** The registered key whose Secure Boot v2 signature holds, or why there is none. */
function signer(fw) {
  if (fw.signedBy) return `${fw.signedBy.name}${fw.signedBy.retired ? ' (retired)' : ''}`;
  return fw.signatures?.length ? 'unknown key' : null;
}

/** What the server identified in the uploaded image. */
function identified(fw) {
  const row = (label, value) => [h('dt', {}, label), h('dd', {}, value)];
  const image = fw.image;
  return h('div', { class: 'identified', 'aria-label': 'Uploaded firmware' },
    h('h3', {}, `${fw.type} ${fw.version}`),
    h('dl', { class: 'properties' },
      row('Id', h('code', {}, fw.id)),
      row('Channel', fw.channel),
      row('Size', bytes(fw.size)),
      row('SHA-256', h('code', { class: 'hash' }, fw.sha256)),
      image ? [
        row('Chip', orDash(image.chip)),
        row('Project name', orDash(image.projectName)),
        row('Image version', orDash(image.version)),
        row('ESP-IDF', orDash(image.idfVersion)),
        row('Secure version', orDash(image.secureVersion)),
        row('Build id', orDash(image.buildId)),
      ] : row('Image', 'Not an ESP-IDF application image: type and version come from the form.'),
      row('Signed by', orDash(signer(fw))),
      row('Download link', h('code', { class: 'hash' }, fw.url))),
    ...(fw.warnings ?? []).map((w) => h('p', { class: 'warning' }, `Warning: ${w}`)),
    h('p', {}, h('a', { href: `#/rollouts/new?firmware=${encodeURIComponent(fw.id)}` }, 'Start a rollout of this firmware')));
}
