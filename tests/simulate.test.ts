// "Try it without hardware" as an operator runs it: `mqota firmware make-test-image` writes an
// image the server reads type and version from, and `mqota simulate` runs a fleet (real mutual-TLS
// MQTT devices provisioned through the API, downloading the image with their certificates) that
// completes a rollout; Ctrl-C stops it cleanly.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { eventually } from './support/eventually.js';
import { startTestServer, type TestServer } from './support/server.js';

const run = promisify(execFile);
type Json = Record<string, any>;

describe('mqota firmware make-test-image and mqota simulate', () => {
  let server: TestServer;
  let tmp: string;
  const cli = path.resolve('bin/mqota.js');
  const base = () => ['--server', server.mqota.publicUrl, '--token', server.config.adminToken!, '--ca', server.pki.paths.caCert];
  const mqota = async (...args: string[]) => (await run(process.execPath, [cli, ...base(), ...args])).stdout;

  before(async () => {
    server = await startTestServer({ env: { MQOTA_ROLLOUT_TICK_MS: '50' } });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-sim-'));
  });
  after(async () => {
    await server?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('make-test-image writes an image the server takes its type and version from', async () => {
    const file = path.join(tmp, 'sim-1.1.0.bin');
    const made = JSON.parse(await mqota('--json', 'firmware', 'make-test-image', '--type', 'sim', '--version', '1.1.0', '--chip', 'esp32c3', '--out', file)) as Json;
    assert.equal(made.path, file);
    assert.equal(made.sha256, createHash('sha256').update(await readFile(file)).digest('hex'));
    const fw = JSON.parse(await mqota('--json', 'firmware', 'upload', file)) as Json;
    assert.equal(fw.type, 'sim');
    assert.equal(fw.version, '1.1.0');
    assert.equal(fw.sha256, made.sha256);
    assert.equal(fw.image.chip, 'esp32c3');

    await assert.rejects(mqota('firmware', 'make-test-image', '--type', 'sim', '--version', 'one', '--out', path.join(tmp, 'bad.bin')),
      (e: any) => /--version 'one' is not a semantic version/.test(e.stderr));
  });

  test('simulate runs a fleet that completes a rollout, and stops on SIGINT', async () => {
    const file = path.join(tmp, 'sim-1.2.0.bin');
    await mqota('firmware', 'make-test-image', '--type', 'sim', '--version', '1.2.0', '--out', file);
    const fw = JSON.parse(await mqota('--json', 'firmware', 'upload', file)) as Json;

    const child: ChildProcess = spawn(process.execPath, [cli, ...base(), 'simulate', '--devices', '5', '--type', 'sim', '--version', '1.0.0', '--failure-rate', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => { out += d; });
    child.stderr!.on('data', (d) => { err += d; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await eventually(async () => {
        const devices = await server.api.call<Json[]>('GET', '/api/devices?type=sim&online=true');
        return devices.length === 5 && devices.every((d) => d.version === '1.0.0');
      }, 60_000, `5 simulated devices online on 1.0.0 (stdout ${out}, stderr ${err})`);
      await eventually(() => /online 5\/5/.test(out), 30_000, `the summary line showing 5/5 online (stdout ${out})`);

      const rollout = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id });
      const done = await eventually(async () => {
        const r = await server.api.call<Json>('GET', `/api/rollouts/${rollout.id}`);
        return r.state === 'completed' ? r : null;
      }, 60_000, 'the rollout to complete');
      assert.equal(done.counts.succeeded, 5);
      assert.equal(done.counts.failed, 0);
      const devices = await server.api.call<Json[]>('GET', '/api/devices?type=sim');
      assert.deepEqual(devices.map((d) => d.version), Array(5).fill('1.2.0'));
      await eventually(() => /succeeded 5 .*versions 1\.2\.0: 5/.test(out), 30_000, `the summary line showing the update (stdout ${out})`);
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0, err);
    assert.match(out, /stopped: online 0\/5/);
    await eventually(async () => (await server.api.call<Json[]>('GET', '/api/devices?type=sim&online=true')).length === 0, 30_000, 'the devices offline');
  });

  test('the simulated fleet shows a dropped device offline and reconnects after a server restart', async () => {
    const child: ChildProcess = spawn(process.execPath, [cli, ...base(), 'simulate', '--devices', '2', '--type', 'rs', '--version', '1.0.0', '--prefix', 'rs'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => { out += d; });
    child.stderr!.on('data', (d) => { err += d; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const online = async () => (await server.api.call<Json[]>('GET', '/api/devices?type=rs&online=true')).map((d) => d.id).sort();
    try {
      await eventually(async () => (await online()).length === 2, 60_000, `2 simulated devices online (stdout ${out}, stderr ${err})`);
      await eventually(() => out.includes('online 2/2'), 30_000, `the summary line showing 2/2 online (stdout ${out})`);

      // The server restarts: the devices reconnect, as real ones do.
      await server.restart();
      await eventually(async () => (await online()).length === 2, 90_000, `the 2 devices back online after the restart (stdout ${out}, stderr ${err})`);

      // A revoked device is disconnected and refused from then on: the summary line stops counting it.
      await server.api.call('POST', '/api/devices/rs-0001/revoke', { reason: 'test' });
      await eventually(async () => (await online()).join() === 'rs-0002', 30_000, 'rs-0001 offline');
      await eventually(() => /online 1\/2[^\n]*$/.test(out.trimEnd()), 30_000, `the summary line showing 1/2 online (stdout ${out})`);
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0, err);
  });
});
