// The `mqota` CLI as an operator runs it: a real process against a real server, human output and
// --json, firmware upload, rollout create with controls, live watch to completion, pause/resume,
// device labels and fleet filters, certificate rotation and revocation.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { startFleet, stopFleet, type SimulatedDevice } from './support/fleet.js';
import { connectDevice, connectFailure } from './support/mqtt.js';
import { eventually, startTestServer, type TestServer } from './support/server.js';

const run = promisify(execFile);
type Json = Record<string, any>;

describe('mqota CLI', () => {
  let server: TestServer;
  let tmp: string;
  let fleet: SimulatedDevice[] = [];
  const cli = path.resolve('bin/mqota.js');
  const base = () => ['--server', server.mqota.publicUrl, '--token', server.config.adminToken!, '--ca', server.pki.paths.caCert];
  const mqota = async (...args: string[]) => (await run(process.execPath, [cli, ...base(), ...args])).stdout;
  const mqotaJson = async (...args: string[]) => JSON.parse(await mqota('--json', ...args)) as Json;

  before(async () => {
    server = await startTestServer({ env: { MQOTA_ROLLOUT_TICK_MS: '50' } });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-cli-'));
    for (const v of ['1.0.0', '1.1.0', '1.2.0']) await writeFile(path.join(tmp, `cl-${v}.bin`), buildEspAppImage({ projectName: 'cl', version: v, payloadBytes: 4096 }));
    fleet = await startFleet(server, 'cl', 4, 'cl', '1.0.0');
    await eventually(() => fleet.every((d) => d.commands.length >= 1), 30_000, 'fleet up');
  });
  after(async () => { await stopFleet(fleet); await server?.close(); });

  test('firmware upload reads type and version from the image; list shows it', async () => {
    const out = await mqota('firmware', 'upload', path.join(tmp, 'cl-1.0.0.bin'));
    assert.match(out, /uploaded cl 1\.0\.0 as fw_/);
    const fw = await mqotaJson('firmware', 'upload', path.join(tmp, 'cl-1.1.0.bin'), '--notes', 'fixes');
    assert.equal(fw.version, '1.1.0');
    assert.equal(fw.notes, 'fixes');
    const table = await mqota('firmware', 'list');
    assert.match(table, /^ID\s+TYPE\s+VERSION/m);
    assert.match(table, /cl\s+1\.1\.0\s+stable/);
  });

  test('rollout create with waves, then watch follows it to completion', async () => {
    const [fw] = (await mqotaJson('firmware', 'list')).filter((f: Json) => f.version === '1.1.0');
    const r = await mqotaJson('rollout', 'create', '--firmware', fw.id, '--waves', '50,100', '--name', 'cl-canary', '--max-per-minute', '600', '--retries', '1');
    assert.equal(r.name, 'cl-canary');
    assert.deepEqual(r.waveSizes, [50, 100]);
    assert.equal(r.policy.maxPerMinute, 600);
    assert.equal(r.policy.maxRetries, 1);
    const watch = spawn(process.execPath, [cli, ...base(), 'rollout', 'watch', r.id], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    watch.stdout.on('data', (d) => { out += d; });
    const code = await new Promise<number | null>((resolve) => watch.on('exit', resolve));
    assert.equal(code, 0, out);
    assert.match(out, /completed/);
    assert.match(out, /succeeded\s+█+\s+4\s+100 %/);
    const rows = await mqotaJson('rollout', 'list', '--state', 'completed');
    assert.ok(rows.some((x: Json) => x.id === r.id));
    const show = await mqota('rollout', 'show', r.id);
    assert.match(show, /DEVICEID\s+WAVE\s+STATE/);
  });

  test('pause and resume; labels and filters', async () => {
    const fw = await mqotaJson('firmware', 'upload', path.join(tmp, 'cl-1.2.0.bin'));
    for (const d of fleet) d.behaviour = 'silent';
    const r = await mqotaJson('rollout', 'create', '--firmware', fw.id, '--waves', '1,100');
    assert.match(await mqota('rollout', 'pause', r.id), /paused/);
    await assert.rejects(mqota('rollout', 'pause', r.id), (e: any) => /already paused \(HTTP 409\)/.test(e.stderr));
    assert.match(await mqota('rollout', 'resume', r.id), /running/);
    assert.match(await mqota('rollout', 'cancel', r.id), /cancelled/);

    const labelled = await mqotaJson('device', 'label', 'cl-1', '--tags', 'lab,floor-2', '--channel', 'beta');
    assert.deepEqual(labelled.tags, ['lab', 'floor-2']);
    const ids = (await mqotaJson('devices', 'list', '--tag', 'lab')).map((d: Json) => d.id);
    assert.deepEqual(ids, ['cl-1']);
    assert.deepEqual((await mqotaJson('devices', 'list', '--channel', 'beta')).map((d: Json) => d.id), ['cl-1']);
    const human = await mqota('devices', 'list', '--type', 'cl', '--version', '>=1.1.0');
    assert.match(human, /cl-1\s+cl\s+1\.1\.0\s+-\s+beta\s+lab,floor-2\s+true/);
  });

  test('device add, certificate and revoke; operator add and revoke', async () => {
    const first = path.join(tmp, 'cl-9-a');
    assert.match(await mqota('device', 'add', 'cl-9', '--type', 'cl', '--out', first), /device cl-9 \(cl\) provisioned/);
    const rotated = await mqotaJson('device', 'certificate', 'cl-9', '--out', path.join(tmp, 'cl-9-b'));
    assert.equal(rotated.bundle.deviceId, 'cl-9');
    const credentials = async (dir: string) => ({ certPem: await readFile(path.join(dir, 'device.crt'), 'utf8'), keyPem: await readFile(path.join(dir, 'device.key'), 'utf8'), caPem: server.pki.caPem });
    const old = await credentials(first);

    const revoked = await mqotaJson('device', 'revoke', 'cl-9', '--serial', new X509Certificate(old.certPem).serialNumber, '--reason', 'lost');
    assert.equal(revoked.revoked.length, 1);
    assert.equal((await connectFailure('cl-9', { port: server.mqota.mqttPort, pki: server.pki, credentials: old })).returnCode, 5);
    (await connectDevice('cl-9', { port: server.mqota.mqttPort, pki: server.pki, credentials: await credentials(path.join(tmp, 'cl-9-b')) })).end(true);
    assert.match(await mqota('device', 'revoke', 'cl-9'), /device cl-9: 1 certificate\(s\) revoked/);
    await assert.rejects(mqota('device', 'revoke', 'cl-9'), (e: any) => /no unrevoked certificate on record.*\(HTTP 409\)/.test(e.stderr));

    await mqota('operator', 'add', 'cl-grafana', '--role', 'monitor', '--out', path.join(tmp, 'cl-grafana'));
    assert.match(await mqota('operator', 'revoke', 'cl-grafana'), /operator cl-grafana: 1 certificate\(s\) revoked/);
  });
});
