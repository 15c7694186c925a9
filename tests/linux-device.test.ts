// Issue #3 end to end: the real device program (esp32/host/build/mqota-linux-device, the agent's
// portable core with its Linux port) updating itself from a real mqota: a bundle from the CLI,
// mutual TLS to the broker, HTTPS downloads into slot files, a re-executing reboot, the
// self-test, rollback and resume. Every scenario has its own device id and state directory.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { isTerminal } from '../src/rollouts/states.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { LinuxDevice, requireLinuxDevice, type LinuxDeviceOptions } from './support/linux-device.js';
import { eventually } from './support/eventually.js';
import { startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;
const run = promisify(execFile);
const SELFTEST_FAIL_MARKER = 'MQOTA_SELFTEST_FAIL';

describe('mqota-linux-device against a real mqota', () => {
  let server: TestServer;
  let tmp: string;
  let factoryImage: string;
  const started: LinuxDevice[] = [];

  before(async () => {
    await requireLinuxDevice();
    server = await startTestServer();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-linux-device-'));
    factoryImage = await writeImage(buildEspAppImage({ projectName: 'thermostat', version: '1.0.0' }), 'factory-1.0.0.bin');
  });
  after(async () => {
    await Promise.all(started.map((d) => d.stop('SIGKILL')));
    await server?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  async function writeImage(bytes: Buffer, name: string): Promise<string> {
    const file = path.join(tmp, name);
    await writeFile(file, bytes);
    return file;
  }

  /** `mqota device add` through the real CLI; the bundle directory is what the device is given. */
  async function provision(id: string): Promise<string> {
    const out = path.join(tmp, id, 'bundle');
    const { stdout } = await run(process.execPath, [path.resolve('bin/mqota.js'), '--server', server.mqota.publicUrl, '--token', server.config.adminToken!,
      '--ca', server.pki.paths.caCert, 'device', 'add', id, '--type', 'thermostat', '--out', out]);
    assert.match(stdout, new RegExp(id));
    return out;
  }

  /** Starts the device on its own state directory, with short timeouts so a scenario takes seconds. */
  function boot(id: string, opts: Partial<LinuxDeviceOptions> = {}): LinuxDevice {
    const device = new LinuxDevice({
      bundle: path.join(tmp, id, 'bundle'),
      state: path.join(tmp, id, 'state'),
      ...opts,
      // No scenario lets the self-test time out: a generous one keeps a loaded machine from rolling back a good image.
      args: ['--self-test-timeout-ms', '60000', '--retry-backoff-ms', '100', ...(opts.args ?? [])],
    });
    started.push(device);
    return device;
  }

  /** eventually(), failing early if the device stopped, and with the device's log on failure. */
  async function until<T>(device: LinuxDevice, what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 30_000): Promise<T> {
    try {
      return await eventually(async () => {
        if (device.exit) throw new Error(`the device stopped while waiting for ${what}`);
        return probe();
      }, timeoutMs, what);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${device.log()}`, { cause: err });
    }
  }

  const getDevice = (id: string) => server.api.call<Json>('GET', `/api/devices/${id}`);

  /**
   * Waits for the device's own announce of `version` from `slot`. (A `succeeded` report sets the
   * version already; the slot comes only with the announce that follows it.)
   */
  function announced(device: LinuxDevice, id: string, version: string, slot: string): Promise<Json> {
    return until(device, `${id} online on ${version} from ${slot}`, async () => {
      const d = await getDevice(id);
      return d.online && d.version === version && d.slot === slot ? d : null;
    });
  }

  /** The device's attempt for a rollout once it reached a final state. */
  function attemptEnd(device: LinuxDevice, id: string, rolloutId: string, timeoutMs?: number): Promise<Json> {
    return until(device, `the attempt of ${id} in ${rolloutId} to finish`, async () => {
      const a = (await getDevice(id)).attempts.find((x: Json) => x.rolloutId === rolloutId);
      return a && isTerminal(a.state) ? a : null;
    }, timeoutMs);
  }

  async function release(bytes: Buffer, name: string): Promise<Json> {
    return server.api.uploadFirmware<Json>(await writeImage(bytes, name), {});
  }

  const rolloutTo = (fw: Json, ...deviceIds: string[]) => server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds });

  test('a device with a CLI bundle, factory-flashed, announces, then updates, reboots into the new image and reports success', async () => {
    const id = 'linux-update';
    await provision(id);
    let device = boot(id, { install: factoryImage });
    try {
      const first = await announced(device, id, '1.0.0', 'ota_0');
      assert.equal(first.chip, 'esp32');
      assert.equal(first.type, 'thermostat');

      const image = buildEspAppImage({ projectName: 'thermostat', version: '1.1.0', payloadBytes: 256 * 1024 });
      const fw = await release(image, 'thermostat-1.1.0.bin');
      assert.equal(fw.type, 'thermostat');
      assert.equal(fw.version, '1.1.0');
      const rollout = await rolloutTo(fw, id);
      assert.equal(rollout.commanded, 1);

      const attempt = await attemptEnd(device, id, rollout.id);
      assert.equal(attempt.state, 'succeeded', device.log());
      assert.equal(attempt.fromVersion, '1.0.0');
      assert.equal(attempt.targetVersion, '1.1.0');
      assert.deepEqual(statePath(attempt), ['pending', 'sent', 'accepted', 'downloading', 'downloaded', 'rebooting', 'succeeded']);
      const progress = attempt.history.filter((h: Json) => h.state === 'downloading').map((h: Json) => h.progress);
      // How many steps show depends on how fast the bytes come (the resumed download below shows
      // them); every report moves forward and the last one is the whole image.
      assert.ok(progress.every((p: number, i: number) => i === 0 || p > progress[i - 1]), `progress reports: ${progress}`);
      assert.equal(progress.at(-1), 100);

      await announced(device, id, '1.1.0', 'ota_1');
      const done = await until(device, 'rollout completed', async () => {
        const r = await server.api.call<Json>('GET', `/api/rollouts/${rollout.id}`);
        return r.state === 'completed' ? r : null;
      });
      assert.equal(done.counts.succeeded, 1);

      // The device really rebooted into the image it downloaded: the same process re-executed,
      // booted ota_1 in pending-verify, confirmed it; ota_1 holds exactly the uploaded bytes.
      await device.waitForLine(/self-test passed: thermostat 1\.1\.0 confirmed/);
      const slot = await readFile(path.join(tmp, id, 'state', 'ota_1.bin'));
      assert.equal(createHash('sha256').update(slot.subarray(0, image.length)).digest('hex'), fw.sha256);
      assert.equal(device.exit, undefined);

      // Confirmed for good: the next start boots 1.1.0 again and is told it is up to date.
      assert.deepEqual(await device.stop(), { code: 0, signal: null });
      device = boot(id);
      await device.waitForLine(/booting ota_1 \(valid\)/);
      await device.waitForLine(/no update offered \(up-to-date\)/);
      assert.equal((await getDevice(id)).attempts.length, 1);
    } finally { await device.stop(); }
  });

  test('announces its health; a crash after the update, without a rollback, makes the device unhealthy during the soak', async () => {
    const id = 'linux-health';
    await provision(id);
    let device = boot(id, { install: factoryImage });
    try {
      const first = await announced(device, id, '1.0.0', 'ota_0');
      // Real values of this process: its own ELF, the slot size, a first start reads as power-on.
      const elf = createHash('sha256').update(await readFile(await requireLinuxDevice())).digest('hex');
      assert.equal(first.health.elfSha256, elf);
      assert.equal(first.health.partitionSize, 1572864);
      assert.equal(first.health.resetReason, 'poweron');
      assert.ok(Number.isInteger(first.health.uptimeS) && first.health.uptimeS >= 0);
      assert.equal(first.health.rssi, undefined, 'no Wi-Fi on this port');

      const fw = await release(buildEspAppImage({ projectName: 'thermostat', version: '1.7.0', payloadBytes: 64 * 1024 }), 'thermostat-1.7.0.bin');
      const rollout = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: [id], soakSeconds: 600 });
      assert.equal((await attemptEnd(device, id, rollout.id)).state, 'succeeded', device.log());
      const updated = await announced(device, id, '1.7.0', 'ota_1');
      assert.equal(updated.health.resetReason, 'software', 'the update\'s reboot');

      // The new image crashes after it confirmed itself: the next boot runs it again (no rollback)
      // and says why it booted.
      assert.equal((await device.stop('SIGABRT')).signal, 'SIGABRT');
      device = boot(id);
      await device.waitForLine(/booting ota_1 \(valid\), reset reason panic/);
      const paused = await until(device, 'the rollout paused on the unhealthy device', async () => {
        const r = await server.api.call<Json>('GET', `/api/rollouts/${rollout.id}`);
        return r.state === 'paused' ? r : null;
      });
      assert.match(paused.reason, /wave 1 finished with 0 % success/);
      const d = await getDevice(id);
      assert.equal(d.version, '1.7.0', 'it never rolled back');
      assert.equal(d.health.resetReason, 'panic');
      await server.api.call('POST', `/api/rollouts/${rollout.id}/cancel`);
    } finally { await device.stop(); }
  });

  test('an image whose self-test fails is rolled back and not offered again', async () => {
    const id = 'linux-selftest';
    await provision(id);
    // A second target that never connects keeps the rollout running after this device's
    // rollback; once a rollout completes, the server no longer answers `previously-failed`.
    const peer = 'linux-selftest-absent';
    await server.api.call('POST', '/api/devices', { id: peer, type: 'thermostat' });
    let device = boot(id, { install: factoryImage });
    try {
      await announced(device, id, '1.0.0', 'ota_0');
      const fw = await release(withSelfTestFailure(buildEspAppImage({ projectName: 'thermostat', version: '1.2.0', payloadBytes: 64 * 1024 })), 'thermostat-1.2.0-broken.bin');
      assert.equal(fw.version, '1.2.0');
      const rollout = await rolloutTo(fw, id, peer);
      assert.equal(rollout.commanded, 1);

      const attempt = await attemptEnd(device, id, rollout.id);
      assert.equal(attempt.state, 'rolled_back', device.log());
      assert.equal(attempt.error, 'self-test-failed');
      assert.deepEqual(statePath(attempt), ['pending', 'sent', 'accepted', 'downloading', 'downloaded', 'rebooting', 'rolled_back']);
      await announced(device, id, '1.0.0', 'ota_0');
      // The new image did boot, found the marker in its slot and failed; the previous one came back.
      await device.waitForLine(/simulating a failing self-test/);
      await device.waitForLine(/update \S+ to 1\.2\.0 was rolled back/);

      // Announcing again (a restart) while the rollout runs: the same update is not offered.
      assert.deepEqual(await device.stop(), { code: 0, signal: null });
      device = boot(id);
      await device.waitForLine(/no update offered \(previously-failed\)/);
      const after = await getDevice(id);
      assert.equal(after.version, '1.0.0');
      assert.deepEqual(after.attempts.map((a: Json) => [a.rolloutId, a.state]), [[rollout.id, 'rolled_back']]);
      assert.equal((await server.api.call<Json>('GET', `/api/rollouts/${rollout.id}`)).state, 'running');
      await server.api.call('POST', `/api/rollouts/${rollout.id}/cancel`);
    } finally { await device.stop(); }
  });

  test('an image altered in the server\'s store fails the device\'s sha256 check and is not installed', async () => {
    const id = 'linux-tampered';
    await provision(id);
    const device = boot(id, { install: factoryImage });
    try {
      await announced(device, id, '1.0.0', 'ota_0');
      const fw = await release(buildEspAppImage({ projectName: 'thermostat', version: '1.3.0', payloadBytes: 64 * 1024 }), 'thermostat-1.3.0.bin');
      // The store is content-addressed and trusts its file names: change bytes after the image
      // header, same length, so only the hash can tell.
      const stored = path.join(server.dataDir, 'firmware', `${fw.sha256}.bin`);
      const bytes = await readFile(stored);
      for (let i = 4096; i < 8192; i++) bytes[i] ^= 0x5a;
      await writeFile(stored, bytes);
      assert.equal((await stat(stored)).size, fw.size);

      const rollout = await rolloutTo(fw, id);
      const attempt = await attemptEnd(device, id, rollout.id);
      assert.equal(attempt.state, 'failed', device.log());
      assert.equal(attempt.error, 'sha256-mismatch');
      // Downloaded to the end, never switched to.
      assert.deepEqual(statePath(attempt), ['pending', 'sent', 'accepted', 'downloading', 'failed']);
      const d = await getDevice(id);
      assert.equal(d.version, '1.0.0');
      assert.equal(d.slot, 'ota_0');
      assert.ok(d.online);
      await device.waitForLine(new RegExp(`sha256 ${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}\\.\\.\\. of the written image, expected ${fw.sha256.slice(0, 16)}`));
    } finally { await device.stop(); }
  });

  test('a device offline when the rollout starts updates when it comes back', async () => {
    const id = 'linux-offline';
    await provision(id);
    let device = boot(id, { install: factoryImage });
    try {
      await announced(device, id, '1.0.0', 'ota_0');
      assert.deepEqual(await device.stop(), { code: 0, signal: null });
      await eventually(async () => !(await getDevice(id)).online, 30_000, `${id} offline`);

      const fw = await release(buildEspAppImage({ projectName: 'thermostat', version: '1.4.0', payloadBytes: 64 * 1024 }), 'thermostat-1.4.0.bin');
      const rollout = await rolloutTo(fw, id);
      assert.equal(rollout.commanded, 0);
      assert.deepEqual((await getDevice(id)).attempts, []);

      device = boot(id);
      const attempt = await attemptEnd(device, id, rollout.id);
      assert.equal(attempt.state, 'succeeded', device.log());
      assert.equal(attempt.fromVersion, '1.0.0');
      assert.deepEqual(attempt.history.slice(0, 3).map((h: Json) => h.state), ['pending', 'sent', 'accepted']);
      await announced(device, id, '1.4.0', 'ota_1');
    } finally { await device.stop(); }
  });

  test('the application defers the first offers: reported deferred with retryAfter, offered again after it, then installed', async () => {
    const id = 'linux-defer';
    await provision(id);
    // The Linux port's simulated application is busy for the first two offers, asking for 1 s each.
    const device = boot(id, { install: factoryImage, args: ['--defer-first', '2', '--defer-retry-after', '1'] });
    try {
      await announced(device, id, '1.0.0', 'ota_0');
      const fw = await release(buildEspAppImage({ projectName: 'thermostat', version: '1.8.0', payloadBytes: 64 * 1024 }), 'thermostat-1.8.0.bin');
      const rollout = await rolloutTo(fw, id);
      const attempt = await attemptEnd(device, id, rollout.id);
      assert.equal(attempt.state, 'succeeded', device.log());
      // `sent` is recorded only if the command's publication completes before the device answers it.
      assert.deepEqual(statePath(attempt).filter((x) => x !== 'sent').slice(0, 4), ['pending', 'deferred', 'deferred', 'accepted']);
      const deferrals = attempt.history.filter((h: Json) => h.state === 'deferred');
      assert.match(deferrals[0].reason, /application busy \(offer 1 of 2 deferred\): 1\.8\.0 later/);
      await device.waitForLine(/update u_\w+ deferred by the application for 1 s/);
      const view = await server.api.call<Json>('GET', `/api/rollouts/${rollout.id}`);
      assert.equal(view.deferrals, 2);
      assert.equal(view.counts.failed, 0);
      await announced(device, id, '1.8.0', 'ota_1');
    } finally { await device.stop(); }
  });

  test('a crash before the new image confirms itself ends rolled back on the old image', async () => {
    const id = 'linux-crash';
    await provision(id);
    // The variable only acts on a boot in pending-verify state, i.e. the re-exec into the new image.
    let device = boot(id, { install: factoryImage, env: { MQOTA_SIM_CRASH_BEFORE_CONFIRM: '1' } });
    try {
      await announced(device, id, '1.0.0', 'ota_0');
      const fw = await release(buildEspAppImage({ projectName: 'thermostat', version: '1.5.0', payloadBytes: 64 * 1024 }), 'thermostat-1.5.0.bin');
      const rollout = await rolloutTo(fw, id);
      assert.equal(rollout.commanded, 1);
      assert.deepEqual(await settledWithin(device.exited, 30_000), { code: 70, signal: null }, device.log());
      await device.waitForLine(/booting ota_1 \(pending-verify\)/);

      device = boot(id);
      const attempt = await attemptEnd(device, id, rollout.id);
      assert.equal(attempt.state, 'rolled_back', device.log());
      assert.equal(attempt.error, 'not-confirmed');
      assert.deepEqual(statePath(attempt), ['pending', 'sent', 'accepted', 'downloading', 'downloaded', 'rebooting', 'rolled_back']);
      await announced(device, id, '1.0.0', 'ota_0');
      // The restart found the unconfirmed image and booted the previous one, as the bootloader does.
      await device.waitForLine(/update \S+ to 1\.5\.0 was rolled back: new image reset before confirming/);
    } finally { await device.stop(); }
  });

  test('a download cut by a power loss resumes with a range request and ends in success', async () => {
    const id = 'linux-resume';
    await provision(id);
    const throttle = ['--max-download-rate', String(400 * 1024)];
    let device = boot(id, { install: factoryImage, args: throttle });
    try {
      await announced(device, id, '1.0.0', 'ota_0');
      const image = buildEspAppImage({ projectName: 'thermostat', version: '1.6.0', payloadBytes: 1024 * 1024 });
      const fw = await release(image, 'thermostat-1.6.0.bin');
      const rollout = await rolloutTo(fw, id);
      assert.equal(rollout.commanded, 1);
      // The device saves its offset every 64 KiB: at 30 % of 1 MiB at least one save happened.
      await until(device, 'download at 30 %', async () => {
        const a = (await getDevice(id)).attempts.find((x: Json) => x.rolloutId === rollout.id);
        return a?.state === 'downloading' && a.progress >= 30 && a.progress < 90;
      });
      assert.equal((await device.stop('SIGKILL')).signal, 'SIGKILL');

      device = boot(id, { args: throttle });
      const stoppedAt = Number((await device.waitForLine(/download of update \S+ stopped at \d+ of/)).match(/stopped at (\d+) of/)![1]);
      assert.ok(stoppedAt > 0);
      const resumed = await device.waitForLine(/resuming at byte \d+ of \d+ \(HTTP 206/);
      assert.equal(Number(resumed.match(/resuming at byte (\d+)/)![1]), stoppedAt);
      assert.match(resumed, new RegExp(`ETag "${fw.sha256}"`));
      assert.ok(!device.lines.some((l) => /restarting from zero/.test(l)), device.log());

      const attempt = await attemptEnd(device, id, rollout.id);
      assert.equal(attempt.state, 'succeeded', device.log());
      // The server kept the progress moving forward across the restart (the resumed download
      // starts below the last percentage reported before the power loss).
      const progress = attempt.history.filter((h: Json) => h.state === 'downloading').map((h: Json) => h.progress);
      assert.ok(progress.every((p: number, i: number) => i === 0 || p > progress[i - 1]), `progress reports: ${progress}`);
      assert.equal(progress.at(-1), 100);
      await announced(device, id, '1.6.0', 'ota_1');
      const slot = await readFile(path.join(tmp, id, 'state', 'ota_1.bin'));
      assert.deepEqual(slot.subarray(0, image.length), image);
    } finally { await device.stop(); }
  });
});

/** The attempt's state history with consecutive `downloading` progress reports taken as one. */
function statePath(attempt: Json): string[] {
  const states: string[] = attempt.history.map((h: Json) => h.state);
  return states.filter((s, i) => s !== 'downloading' || states[i - 1] !== 'downloading');
}

/** The promise's value, or 'timed out' after timeoutMs; leaves no timer behind. */
async function settledWithin<T>(promise: Promise<T>, timeoutMs: number): Promise<T | 'timed out'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<'timed out'>((resolve) => { timer = setTimeout(resolve, timeoutMs, 'timed out'); })]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Plants the Linux port's self-test failure marker in the payload and keeps the image valid:
 * the checksum byte (XOR of segment data) and the appended SHA-256 are brought up to date.
 */
function withSelfTestFailure(image: Buffer): Buffer {
  const out = Buffer.from(image);
  const at = 24 + 8 + 256 + 64; // image header, segment header, app description, then payload
  const marker = Buffer.from(SELFTEST_FAIL_MARKER, 'ascii');
  const checksumAt = out.length - 32 - 1;
  for (let i = 0; i < marker.length; i++) {
    out[checksumAt] ^= out[at + i] ^ marker[i];
    out[at + i] = marker[i];
  }
  createHash('sha256').update(out.subarray(0, out.length - 32)).digest().copy(out, out.length - 32);
  return out;
}
