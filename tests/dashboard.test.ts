// The web dashboard end to end: a real mqota, simulated devices over mutual-TLS MQTT, and Debian's
// headless Chromium driven by playwright-core. An operator signs in, starts a rollout from the UI
// and watches it reach 100 % through the live event stream; then reads a device's history.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { Agent, request } from 'undici';
import * as states from '../src/rollouts/states.js';
import { topics } from '../src/topics.js';
import { launchBrowser, type TestBrowser } from './support/browser.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { endAll } from './support/mqtt.js';
import { startFleet, stopFleet } from './support/fleet.js';
import { startTestServer, type TestServer } from './support/server.js';
import { eventually } from './support/eventually.js';

const TYPE = 'thermo';
const DEVICES = ['thermo-1', 'thermo-2', 'thermo-3', 'thermo-4', 'thermo-5'];
const STEP_MS = 40;
/** Screenshots of the main pages, kept as test artifacts (git-ignored). */
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));

async function screenshot(page: import('playwright-core').Page, name: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `dashboard-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`dashboard screenshot: ${file}`);
}

type Json = Record<string, any>;

/**
 * A device that announces `version` and works through an update command step by step, pausing
 * between reports so the dashboard sees the intermediate states, then announces the new version.
 */
async function simulatedDevice(server: TestServer, id: string, version: string): Promise<MqttClient> {
  const client = await server.device(id);
  const handled = new Set<string>();
  const health = (resetReason: string) => ({ rssi: -58, freeHeap: 182_344, minFreeHeap: 150_112, uptimeS: 3725, resetReason, partitionSize: 1_572_864, elfSha256: 'c0ffee'.padEnd(64, '0') });
  const announce = (v: string) => client.publishAsync(topics.announce(id), JSON.stringify({ type: TYPE, version: v, chip: 'esp32', health: health(v === version ? 'poweron' : 'software') }), { qos: 1 });
  client.on('message', (_topic, payload) => {
    const cmd = JSON.parse(payload.toString());
    if (cmd.action !== 'update' || handled.has(cmd.updateId)) return;
    handled.add(cmd.updateId);
    void (async () => {
      const steps = [{ state: 'accepted' }, { state: 'downloading', progress: 30 }, { state: 'downloading', progress: 70 },
        { state: 'downloading', progress: 100 }, { state: 'downloaded' }, { state: 'rebooting' }, { state: 'succeeded', version: cmd.version }];
      for (const step of steps) {
        await new Promise((r) => setTimeout(r, STEP_MS));
        await client.publishAsync(topics.status(id), JSON.stringify({ updateId: cmd.updateId, ...step }), { qos: 1 });
      }
      await announce(cmd.version);
    })().catch(() => undefined); // the client may be closed mid-update at the end of the run
  });
  await announce(version);
  return client;
}

describe('web dashboard', () => {
  let server: TestServer;
  let browser: TestBrowser;
  let devices: MqttClient[] = [];
  let imageDir: string;
  let baseUrl: string;
  const token = 'test-token-0123456789abcdef';

  before(async () => {
    // Versions are sampled every second, so the versions-over-time chart has points in a test's time.
    server = await startTestServer({ env: { MQOTA_VERSION_SAMPLE_MS: '1000' } });
    baseUrl = server.mqota.publicUrl;
    imageDir = await mkdtemp(path.join(os.tmpdir(), 'mqota-dashboard-img-'));
    for (const version of ['1.0.0', '1.1.0']) {
      const file = path.join(imageDir, `${TYPE}-${version}.bin`);
      await writeFile(file, buildEspAppImage({ projectName: TYPE, version, payloadBytes: 8 * 1024 }));
      await server.api.uploadFirmware(file, {});
    }
    devices = await Promise.all(DEVICES.map((id) => simulatedDevice(server, id, '1.0.0')));
    // Every device announced (and so is known, online, at 1.0.0) before the browser looks.
    await eventually(async () => (await server.api.call<Json[]>('GET', `/api/devices?type=${TYPE}&online=true`))
      .filter((d) => d.version === '1.0.0').length === DEVICES.length, 30_000, 'every device announced');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await endAll(...devices);
    await server?.close();
    if (imageDir) await rm(imageDir, { recursive: true, force: true });
  });

  test('is served at / with a strict content security policy, and refuses a wrong token', async () => {
    const { page } = browser;
    const res = await page.goto(`${baseUrl}/`);
    assert.equal(res?.status(), 200);
    const headers = res!.headers();
    assert.match(headers['content-security-policy'], /default-src 'self'/);
    assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline|unsafe-eval/);
    assert.equal(headers['x-content-type-options'], 'nosniff');

    await page.getByLabel('API token', { exact: true }).fill('not-the-right-token-at-all');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'The token was not accepted' }).waitFor();
    assert.equal(await page.getByRole('navigation', { name: 'Main' }).isVisible(), false);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.deepEqual(browser.problems, []);
  });

  test('signs in, starts a rollout from the UI and shows it reach 100 %', async () => {
    const { page } = browser;
    await page.getByLabel('API token', { exact: true }).fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Fleet overview' }).waitFor();
    // The fleet figures come from the API: five devices, all online.
    const online = page.locator('.tile').filter({ has: page.getByText('Online', { exact: true }) }).locator('dd');
    await online.filter({ hasText: /^5 of 5$/ }).waitFor();

    await page.getByRole('link', { name: 'Rollouts', exact: true }).click();
    await page.getByRole('link', { name: 'New rollout' }).click();
    const firmware = page.getByLabel('Firmware', { exact: true });
    await firmware.locator('option', { hasText: `${TYPE} 1.1.0` }).waitFor({ state: 'attached' });
    await firmware.selectOption({ label: `${TYPE} 1.1.0 (stable)` });
    await page.getByText(`5 device(s) of type ${TYPE} known, 5 online`).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('thermo 1.1.0 to everyone');
    await page.getByRole('button', { name: 'Start rollout' }).click();

    await page.waitForURL(/#\/rollouts\/[A-Za-z0-9_-]+$/);
    await page.getByRole('heading', { name: 'Rollout thermo 1.1.0 to everyone' }).waitFor();
    const summary = page.locator('#rollout-summary');
    await summary.filter({ hasText: '5/5 succeeded · 100 %' }).waitFor({ timeout: 60_000 });
    const bar = page.getByRole('progressbar', { name: 'Rollout progress' });
    assert.equal(await bar.getAttribute('aria-valuenow'), '5');
    assert.equal(await bar.getAttribute('aria-valuemax'), '5');
    await page.locator('.rollout-status').filter({ hasText: 'completed' }).waitFor();
    // The event moved the state at once; the history comes with the reload that follows it.
    await page.getByRole('listitem').filter({ hasText: 'completed' }).filter({ hasText: 'wave 1' }).waitFor();
    await page.getByRole('row').filter({ hasText: 'Wave 1' }).filter({ hasText: 'done' }).waitFor();
    const rows = page.getByRole('row').filter({ has: page.getByRole('link', { name: /^thermo-\d$/ }) });
    assert.equal(await rows.count(), DEVICES.length);
    assert.equal(await rows.filter({ hasText: 'succeeded' }).count(), DEVICES.length);

    const rolloutId = new URL(page.url()).hash.split('/').pop()!;
    const view = await server.api.call<Json>('GET', `/api/rollouts/${rolloutId}`);
    assert.equal(view.state, 'completed');
    assert.equal(view.counts.succeeded, DEVICES.length);

    // The progress over time, drawn by uPlot (served by mqota itself under the CSP), with the
    // latest counts beside it: every attempt ended in succeeded.
    const timeline = page.getByRole('figure').filter({ hasText: 'Attempts per state over time' });
    await timeline.getByRole('row').filter({ hasText: /^succeeded\s*5$/ }).waitFor();
    assert.equal(await timeline.locator('canvas').count(), 1);
    assert.ok(await timeline.locator('.u-legend').filter({ hasText: 'downloading' }).count() === 1, 'every state the attempts went through is a series');
    await screenshot(page, 'rollout');
    assert.deepEqual(browser.problems, []);
  });

  test('the device page shows telemetry, labels and its attempt history; the overview its new version, also over time', async () => {
    const { page } = browser;
    await server.api.call('PUT', '/api/devices/thermo-3', { tags: ['lab', 'floor-2'], channel: 'beta' });
    await page.getByRole('link', { name: 'thermo-3', exact: true }).click();
    await page.getByRole('heading', { name: 'Device thermo-3' }).waitFor();
    const attempt = page.getByRole('article', { name: 'Update 1.0.0 → 1.1.0' });
    await attempt.filter({ hasText: 'succeeded' }).waitFor();
    const steps = await attempt.getByRole('row').allInnerTexts();
    const states = steps.slice(1).map((row) => row.split('\t')[0].trim());
    assert.deepEqual(states, ['pending', 'sent', 'accepted', 'downloading', 'downloading', 'downloading', 'downloaded', 'rebooting', 'succeeded']);
    assert.match(steps.find((row) => row.includes('downloading'))!, /30 %/);
    await page.locator('.properties').filter({ hasText: '1.1.0' }).waitFor();
    // Telemetry first: what the device said of itself in its last announce (after the update's reboot).
    const telemetry = page.getByRole('region', { name: 'Telemetry' }).locator('dl');
    await telemetry.filter({ hasText: 'software' }).waitFor();
    const tiles = Object.fromEntries((await telemetry.locator('div').allInnerTexts()).map((t) => t.split('\n').map((x) => x.trim())));
    assert.deepEqual(tiles, {
      'Wi-Fi signal': '-58 dBm', 'Free heap': '178 KiB', 'Lowest free heap': '147 KiB', Uptime: '1 h 2 min', 'Last reset': 'software', 'Partition size': '1536 KiB',
    });
    const box = async (sel: string) => (await page.locator(sel).first().boundingBox())!.y;
    assert.ok(await box('.telemetry') < await box('.properties'), 'telemetry above the device\'s properties');
    const props = page.locator('.properties');
    await props.filter({ hasText: 'lab, floor-2' }).filter({ hasText: 'beta' }).waitFor();
    await props.filter({ hasText: 'c0ffee' }).waitFor();
    await screenshot(page, 'device');

    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('img', { name: /thermo devices per version: 1\.1\.0: 5 \(5 online\)/ }).waitFor();
    // Versions over time come from the samples: the newest one counts the five on 1.1.0.
    const overTime = page.getByRole('figure').filter({ hasText: 'thermo: devices per version over time' });
    await overTime.getByRole('row').filter({ hasText: /^1\.1\.0\s*5$/ }).waitFor();
    assert.equal(await overTime.locator('canvas').count(), 1);
    await screenshot(page, 'overview');
    assert.deepEqual(browser.problems, []);
  });
  test('uploads firmware from the UI and shows what the image says; a duplicate is refused clearly', async () => {
    const { page } = browser;
    await page.getByRole('link', { name: 'Firmware', exact: true }).click();
    await page.getByRole('heading', { name: 'Firmware', exact: true }).waitFor();
    const image = { name: `${TYPE}-1.2.0.bin`, mimeType: 'application/octet-stream', buffer: buildEspAppImage({ projectName: TYPE, version: '1.2.0', idfVersion: 'v5.4.2' }) };
    await page.getByLabel('Image file').setInputFiles(image);
    await page.getByRole('button', { name: 'Upload' }).click();
    const identified = page.getByLabel('Uploaded firmware');
    await identified.getByRole('heading', { name: `${TYPE} 1.2.0` }).waitFor();
    const fields = await identified.locator('dt').allInnerTexts();
    const values = await identified.locator('dd').allInnerTexts();
    const shown = Object.fromEntries(fields.map((f, i) => [f, values[i]]));
    assert.equal(shown.Chip, 'esp32');
    assert.equal(shown['Project name'], TYPE);
    assert.equal(shown['ESP-IDF'], 'v5.4.2');
    assert.match(shown['SHA-256'], /^[0-9a-f]{64}$/);
    await page.getByRole('row').filter({ hasText: '1.2.0' }).filter({ hasText: 'v5.4.2' }).waitFor();

    await page.getByLabel('Image file').setInputFiles(image);
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.getByRole('alert').filter({ hasText: /Upload refused: Not possible right now: .*1\.2\.0/ }).waitFor();
    assert.deepEqual(browser.problems, []);
  });

  test('pauses, resumes and cancels a running rollout', async () => {
    const { page } = browser;
    // A device that never connects keeps its rollout running as long as the test needs.
    await server.api.call('POST', '/api/devices', { id: 'thermo-offline', type: TYPE });
    await page.goto(`${baseUrl}/#/rollouts/new`);
    await page.getByLabel('Firmware', { exact: true }).selectOption({ label: `${TYPE} 1.2.0 (stable)` });
    await page.getByLabel('Only the devices I choose').check();
    await page.getByLabel(/^thermo-offline/).check();
    await page.getByText('1 of 6 device(s) chosen.').waitFor();
    await page.getByRole('button', { name: 'Start rollout' }).click();
    const status = page.locator('.rollout-status');
    await status.filter({ hasText: 'running' }).waitFor();

    assert.equal(await page.locator('#who').textContent(), 'admin · admin');
    await page.getByRole('button', { name: 'Pause' }).click();
    await status.filter({ hasText: 'paused' }).waitFor();
    await page.getByRole('button', { name: 'Resume' }).click();
    await status.filter({ hasText: 'running' }).waitFor();
    await page.getByRole('button', { name: 'Cancel rollout' }).click();
    const dialog = page.getByRole('dialog', { name: 'Cancel this rollout?' });
    await dialog.getByRole('button', { name: 'Cancel rollout' }).click();
    await status.filter({ hasText: 'cancelled' }).waitFor();
    assert.equal(await page.getByRole('button', { name: /^(Pause|Resume|Cancel rollout)$/ }).count(), 0);
    await page.getByRole('list').filter({ hasText: 'paused' }).filter({ hasText: 'cancelled' }).waitFor(); // the history
    assert.deepEqual(browser.problems, []);
  });

  test('steers a rollout from its page: edit settings, promote the next wave, retry the failed devices; says what the wave waits for', async () => {
    const { page } = browser;
    // Two devices that fail their first attempt, one that never connects; waves of 2 and 3 devices,
    // so a failure in wave 1 pauses the rollout at its threshold whichever two are in it.
    const flaky = await startFleet(server, 'thermo-flaky', 2, TYPE, '1.0.0', { plan: ['fail'] });
    try {
      await server.api.call('POST', '/api/devices', { id: 'thermo-away', type: TYPE });
      const fw = (await server.api.call<Json[]>('GET', '/api/firmware')).find((f) => f.version === '1.1.0')!;
      const r = await server.api.call<Json>('POST', '/api/rollouts', {
        firmwareId: fw.id, deviceIds: ['thermo-flaky-0', 'thermo-flaky-1', 'thermo-away'], waves: [2, 3], waveUnit: 'count',
        failureThreshold: { count: 1 }, waveDeadlineSeconds: 1,
      });
      await page.goto(`${baseUrl}/#/rollouts/${r.id}`);
      const status = page.locator('.rollout-status');
      await status.filter({ hasText: 'paused' }).filter({ hasText: 'failure threshold reached' }).waitFor();
      await status.filter({ hasText: /wave 1 of 2/ }).waitFor();

      await page.getByRole('button', { name: 'Edit settings' }).click();
      const edit = page.getByRole('region', { name: 'Edit settings' });
      await edit.getByLabel('Soak time (s)').fill('30');
      await edit.getByLabel('Failure threshold: count').fill('5');
      await edit.getByRole('button', { name: 'Save settings' }).click();
      await page.getByRole('status').filter({ hasText: 'Settings changed: soakSeconds 0 → 30; failureThreshold {"count":1} → {"count":5}.' }).waitFor();
      await edit.waitFor({ state: 'hidden' });
      await page.locator('.properties').filter({ hasText: /Soak time \(s\)\s*30/ }).waitFor();

      await page.getByRole('button', { name: 'Promote next wave' }).click();
      await page.getByRole('dialog', { name: 'Start wave 2 of 2 now?' }).getByRole('button', { name: 'Start wave 2' }).click();
      await status.filter({ hasText: /wave 2 of 2/ }).waitFor();
      await page.getByRole('button', { name: 'Promote next wave' }).waitFor({ state: 'hidden' });

      await page.getByRole('button', { name: 'Retry failed' }).click();
      await page.getByRole('dialog', { name: /^Retry [12] failed devices?\?$/ }).getByRole('button', { name: 'Retry failed' }).click();
      await page.getByRole('status').filter({ hasText: /^[12] devices? will get a new attempt\.$/ }).waitFor();
      await page.getByText(/\d retried by an operator/).waitFor();

      // The device that never came is skipped, with the reason, once its wave's deadline has passed.
      await eventually(async () => {
        await page.reload();
        return page.getByRole('row').filter({ hasText: 'thermo-away' }).filter({ hasText: 'skipped: offline' }).isVisible();
      }, 30_000, 'thermo-away skipped: offline');
      await screenshot(page, 'rollout-steering');

      const history = (await server.api.call<Json>('GET', `/api/rollouts/${r.id}`)).history.map((h: Json) => h.reason).join('\n');
      assert.match(history, /settings edited by admin: soakSeconds 0 → 30/);
      assert.match(history, /wave 2 of 2 started by admin \(promoted by hand\)/);
      assert.match(history, /retry of [12] failed device\(s\) by admin/);
      await server.api.call('POST', `/api/rollouts/${r.id}/cancel`);
      assert.deepEqual(browser.problems, []);
    } finally {
      await stopFleet(flaky);
    }
  });

  test('firmware: the image\'s own version, delete refused while a rollout uses it, no "Roll out" without devices; certificates on the device page', async () => {
    const { page } = browser;
    // The image says v2.0.0; the catalog keeps the normalised 2.0.0 and shows both.
    const file = path.join(imageDir, `${TYPE}-v2.0.0.bin`);
    await writeFile(file, buildEspAppImage({ projectName: TYPE, version: 'v2.0.0', payloadBytes: 4096 }));
    const fw = await server.api.uploadFirmware<Json>(file, {});
    const lonelyFile = path.join(imageDir, 'lonely-1.0.0.bin');
    await writeFile(lonelyFile, buildEspAppImage({ projectName: 'lonely', version: '1.0.0', payloadBytes: 1024 }));
    await server.api.uploadFirmware(lonelyFile, {});
    // thermo-offline (added by an earlier test) never connects: this rollout keeps running.
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: ['thermo-offline'] });

    await page.goto(`${baseUrl}/#/firmware`);
    const row = page.getByRole('row').filter({ hasText: '2.0.0 (image: v2.0.0)' });
    await row.waitFor();
    assert.equal(await row.getByRole('link', { name: `Roll out ${TYPE} 2.0.0` }).count(), 1);
    const lonely = page.getByRole('row').filter({ hasText: 'lonely' });
    await lonely.filter({ hasText: 'no devices' }).waitFor();
    assert.equal(await lonely.getByRole('link', { name: /Roll out/ }).count(), 0, 'no rollout for a type without devices');
    assert.equal(await page.getByRole('row').filter({ hasText: '1.1.0' }).filter({ hasText: '(image:' }).count(), 0, 'same version: shown once');
    await screenshot(page, 'firmware');

    await row.getByRole('button', { name: `Delete ${TYPE} 2.0.0` }).click();
    await page.getByRole('dialog', { name: `Delete ${TYPE} 2.0.0?` }).getByRole('button', { name: 'Delete firmware' }).click();
    await page.getByRole('alert').filter({ hasText: /Not deleted: .*used by a running rollout; cancel it first/ }).waitFor();
    assert.equal(await row.count(), 1);
    await server.api.call('POST', `/api/rollouts/${r.id}/cancel`);
    await row.getByRole('button', { name: `Delete ${TYPE} 2.0.0` }).click();
    await page.getByRole('dialog', { name: `Delete ${TYPE} 2.0.0?` }).getByRole('button', { name: 'Delete firmware' }).click();
    await page.getByText(`Deleted ${TYPE} 2.0.0.`).waitFor();
    await row.waitFor({ state: 'detached' });

    // A device provisioned through the API has its certificate on record: serial and expiry.
    const [cert] = (await server.api.call<Json>('GET', '/api/devices/thermo-offline')).certificates;
    await page.goto(`${baseUrl}/#/devices/thermo-offline`);
    const certRow = page.getByRole('row').filter({ hasText: cert.serial });
    await certRow.filter({ hasText: 'valid' }).waitFor();
    assert.match(await certRow.locator('time').getAttribute('datetime') ?? '', new RegExp(`^${cert.notAfter.slice(0, 10)}`));
    await page.getByText('This device has not reported health').waitFor();
    assert.deepEqual(browser.problems, []);
  });

  test('a viewer token reads everything, is told clearly that it cannot change anything, and is signed out when revoked', async () => {
    const { page } = browser;
    const viewer = await server.api.call<Json>('POST', '/api/tokens', { name: 'dashboard-viewer', role: 'viewer' });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token', { exact: true }).fill(viewer.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#who').filter({ hasText: 'dashboard-viewer · viewer' }).waitFor();
    await page.getByRole('link', { name: 'Rollouts', exact: true }).click();
    await page.getByRole('link', { name: 'thermo 1.1.0 to everyone' }).click();
    await page.locator('#rollout-summary').filter({ hasText: '5/5 succeeded' }).waitFor();

    // Only what the role may do is offered: no new rollout, no upload, no "Roll out" links.
    await page.getByRole('link', { name: 'Rollouts', exact: true }).click();
    await page.getByRole('heading', { name: 'All rollouts' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'New rollout' }).count(), 0);
    await page.getByRole('link', { name: 'Firmware', exact: true }).click();
    await page.getByRole('cell', { name: '1.2.0', exact: true }).waitFor();
    assert.equal(await page.getByRole('heading', { name: 'Upload firmware' }).count(), 0);
    assert.equal(await page.getByRole('link', { name: /^Roll out / }).count(), 0);

    // The server decides regardless: the form reached by its address is refused.

    await page.goto(`${baseUrl}/#/rollouts/new`);
    await page.getByLabel('Firmware', { exact: true }).selectOption({ label: `${TYPE} 1.2.0 (stable)` });
    await page.getByRole('button', { name: 'Start rollout' }).click();
    await page.getByRole('alert').filter({ hasText: "Your token's role does not allow this action" }).filter({ hasText: 'viewer' }).waitFor();

    // Revoked while signed in: the next call is a 401 and the dashboard asks for a token again.
    await server.api.call('DELETE', '/api/tokens/dashboard-viewer');
    await page.getByRole('link', { name: 'Devices', exact: true }).click();
    await page.getByText('The server no longer accepts your token').waitFor();
    await page.getByLabel('API token', { exact: true }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.deepEqual(browser.problems, []);
  });
  test('takes the state vocabulary from the server: /states.js is src/rollouts/states.ts, revalidated by ETag', async (t) => {
    const { page } = browser;
    await page.goto(`${baseUrl}/`);
    const inPage = await page.evaluate(async () => {
      const vocabulary: Record<string, unknown> = await import('/states.js' as string);
      const model = await import('/rollout-model.js' as string);
      const plain = Object.fromEntries(Object.entries(vocabulary).map(([k, v]) => [k, v instanceof Set ? { set: [...v] } : v]));
      const groups = Object.fromEntries((vocabulary.ATTEMPT_STATES as string[]).map((s) => [s, model.groupOf(s)]));
      const finished = Object.fromEntries((vocabulary.ROLLOUT_STATES as string[]).map((s) => [s, model.isFinished(s)]));
      return { plain, groups, finished };
    });
    const expected = Object.fromEntries(Object.entries(states).filter(([, v]) => typeof v !== 'function')
      .map(([k, v]) => [k, v instanceof Set ? { set: [...v] } : v]));
    assert.deepEqual(inPage.plain, expected);
    // The progress bar's "Failed" group is exactly the failure states (rejected among them).
    for (const s of states.ATTEMPT_STATES) assert.equal(inPage.groups[s] === 'failed', states.FAILURE_STATES.has(s), s);
    for (const s of states.ROLLOUT_STATES) assert.equal(inPage.finished[s], states.isFinalRolloutState(s), s);

    const agent = new Agent({ connect: { ca: server.pki.caPem } });
    t.after(() => agent.close());
    const first = await request(`${baseUrl}/states.js`, { dispatcher: agent });
    assert.equal(first.statusCode, 200);
    assert.match(String(first.headers['content-type']), /^text\/javascript/);
    assert.match(String(first.headers['content-security-policy']), /default-src 'self'/);
    await first.body.text();
    const etag = String(first.headers.etag);
    const again = await request(`${baseUrl}/states.js`, { dispatcher: agent, headers: { 'if-none-match': etag } });
    assert.equal(again.statusCode, 304);
    await again.body.text();
    assert.deepEqual(browser.problems, []);
  });
  test('reads server-sent events however the stream is cut into chunks', async () => {
    const { page } = browser;
    // In the page, with the browser's own streams: the dashboard's parser over every split of one stream.
    const results = await page.evaluate(async (module) => {
      const { readEvents } = await import(module);
      const stream = 'retry: 3000\r\n: connected\r\n\r\nevent: attempt\ndata: {"a":1,\ndata: "b":"x\\ny"}\nid: 7\n\n'
        + 'event: rollout\rdata:{"state":"paused"}\r\r: heartbeat\n\ndata: {"plain":true}\n\n';
      const runs = [];
      for (let cut = 1; cut < stream.length; cut += 1) {
        const chunks = [stream.slice(0, cut), stream.slice(cut)];
        const body = new ReadableStream({ pull(c) { const next = chunks.shift(); if (next === undefined) c.close(); else c.enqueue(new TextEncoder().encode(next)); } });
        const events: unknown[] = [];
        await readEvents(body, new AbortController().signal, (e: unknown) => events.push(e));
        runs.push(JSON.stringify(events));
      }
      return [...new Set(runs)];
    }, '/sse.js');
    assert.equal(results.length, 1, `every split gives the same events: ${results.join('\n')}`);
    assert.deepEqual(JSON.parse(results[0]), [
      { type: 'message', data: null, id: null, retry: 3000 },
      { type: 'attempt', data: '{"a":1,\n"b":"x\\ny"}', id: '7', retry: null },
      { type: 'rollout', data: '{"state":"paused"}', id: null, retry: null },
      { type: 'message', data: '{"plain":true}', id: null, retry: null },
    ]);
  });
});
