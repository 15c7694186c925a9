// Issue #11 end to end on the real device program (esp32/host/build/mqota-linux-device): a bundle
// from the CLI carries the command key and the active image key digests; the device installs an
// image signed by a trusted key, refuses unsigned, tampered and retired-key images with
// `failed: signature-invalid`, refuses forged, expired and other-device commands that reach it
// through the broker, and installs an image whose own version string is not semver.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { COMMAND_KEY_FILE } from '../certs/command-key.js';
import { isTerminal } from '../src/rollouts/states.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { signImage } from '../src/firmware/signature-block.js';
import { signCommand } from '../src/protocol/command-signature.js';
import { encodeCommand } from '../src/protocol/messages.js';
import { topics } from '../src/topics.js';
import { LinuxDevice, requireLinuxDevice } from './support/linux-device.js';
import { eventually } from './support/eventually.js';
import { startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;
const run = promisify(execFile);

describe('signed images and commands on mqota-linux-device', () => {
  let server: TestServer;
  let tmp: string;
  const started: LinuxDevice[] = [];
  const release = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const old = generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey;

  before(async () => {
    await requireLinuxDevice();
    // The server takes any image, so that what the device itself refuses can reach it.
    server = await startTestServer({ env: { MQOTA_REQUIRE_SIGNED_IMAGES: 'false' } });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-signed-'));
    await cli('keys', 'add', await file('release.pem', pemOf(release)), '--name', 'release');
    await cli('keys', 'add', await file('old.pem', pemOf(old)), '--name', 'old');
    const oldKey = (await server.api.call<Json[]>('GET', '/api/keys')).find((k) => k.name === 'old')!;
    await cli('keys', 'retire', oldKey.id, '--reason', 'compromised');
  });
  after(async () => {
    await Promise.all(started.map((d) => d.stop('SIGKILL')));
    await server?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  const pemOf = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }).toString();
  async function file(name: string, bytes: Buffer | string): Promise<string> {
    const p = path.join(tmp, name);
    await writeFile(p, bytes);
    return p;
  }
  const cli = (...args: string[]) => run(process.execPath, [path.resolve('bin/mqota.js'), '--server', server.mqota.publicUrl, '--token', server.config.adminToken!,
    '--ca', server.pki.paths.caCert, ...args]);

  /** Provisions `id` (type = its own name) with the CLI and boots it on a factory image of 1.0.0. */
  async function device(id: string): Promise<LinuxDevice> {
    const bundle = path.join(tmp, id, 'bundle');
    await cli('device', 'add', id, '--type', id, '--out', bundle);
    const factory = await file(`${id}-factory.bin`, buildEspAppImage({ projectName: id, version: '1.0.0' }));
    const d = new LinuxDevice({ bundle, state: path.join(tmp, id, 'state'), install: factory, args: ['--self-test-timeout-ms', '60000', '--retry-backoff-ms', '100'] });
    started.push(d);
    await d.waitForLine(/update commands: signed by the command key only; images: Secure Boot v2 signature of a trusted key required/);
    await until(d, `${id} online`, async () => (await getDevice(id)).online || null);
    return d;
  }
  const getDevice = (id: string) => server.api.call<Json>('GET', `/api/devices/${id}`);
  async function until<T>(d: LinuxDevice, what: string, probe: () => Promise<T | null | undefined | false>): Promise<T> {
    try {
      return await eventually(async () => {
        if (d.exit) throw new Error(`the device stopped while waiting for ${what}`);
        return probe();
      }, 60_000, what);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${d.log()}`, { cause: err });
    }
  }
  /** Uploads `bytes` (with an explicit catalog version when given), rolls it out to `id`, and returns the finished attempt. */
  async function update(d: LinuxDevice, id: string, bytes: Buffer, version?: string): Promise<Json> {
    const fw = await server.api.uploadFirmware<Json>(await file(`${id}-${bytes.length}.bin`, bytes), version ? { version } : {});
    const rollout = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: [id] });
    return until(d, `the attempt of ${id}`, async () => {
      const a = (await getDevice(id)).attempts.find((x: Json) => x.rolloutId === rollout.id);
      return a && isTerminal(a.state) ? a : null;
    });
  }

  test('the bundle carries the command key and only the active key digest', async () => {
    const bundle = path.join(tmp, 'bundle-check');
    await cli('device', 'add', 'bundle-check', '--type', 'x', '--out', bundle);
    const json = JSON.parse(await readFile(path.join(bundle, 'device.json'), 'utf8'));
    const keys = await server.api.call<Json[]>('GET', '/api/keys');
    assert.deepEqual(json.imageKeyDigests, [keys.find((k) => k.name === 'release')!.keyDigest]);
    assert.match(await readFile(path.join(bundle, 'command-key.pem'), 'utf8'), /^-----BEGIN PUBLIC KEY-----/);
    assert.match(await readFile(path.join(bundle, 'nvs.csv'), 'utf8'), /command_key,file,string,command-key\.pem/);
  });

  test('an image signed by the trusted key installs; unsigned, tampered and retired-key images are refused', async () => {
    const id = 'signed-lamp';
    const d = await device(id);
    const image = (version: string) => buildEspAppImage({ projectName: id, version, payloadBytes: 64 * 1024 });

    const unsigned = await update(d, id, image('1.1.0'));
    assert.deepEqual([unsigned.state, unsigned.error], ['failed', 'signature-invalid'], d.log());
    assert.match(unsigned.reason, /image carries no/);

    const tampered = signImage(image('1.2.0'), release);
    tampered[200] ^= 0xff; // an image byte after signing: the digest no longer matches
    const changed = await update(d, id, tampered);
    assert.deepEqual([changed.state, changed.error], ['failed', 'signature-invalid'], d.log());
    assert.match(changed.reason, /signature of a trusted key does not hold/);

    const byOld = await update(d, id, signImage(image('1.3.0'), old));
    assert.deepEqual([byOld.state, byOld.error], ['failed', 'signature-invalid'], d.log());
    assert.match(byOld.reason, /signed only by keys this device does not trust/);
    assert.equal((await getDevice(id)).version, '1.0.0', 'nothing refused was installed');

    const good = await update(d, id, signImage(image('1.4.0'), release));
    assert.equal(good.state, 'succeeded', d.log());
    await d.waitForLine(/image signature verified \(Secure Boot v2 block of a trusted key\)/);
    await d.waitForLine(/self-test passed: signed-lamp 1\.4\.0 confirmed/);
  });

  test('forged, expired and other-device commands published on the device\'s topic are refused', async () => {
    const id = 'cmd-lamp';
    const d = await device(id);
    const image = signImage(buildEspAppImage({ projectName: id, version: '1.1.0' }), release);
    const fw = await server.api.uploadFirmware<Json>(await file('cmd-lamp.bin', image), {});
    const command = {
      action: 'update' as const, updateId: 'forged-1', type: id, version: '1.1.0', url: fw.url, sha256: fw.sha256, size: fw.size,
    };
    const commandKey = createPrivateKey(await readFile(path.join(server.pki.paths.dir, COMMAND_KEY_FILE)));
    const now = Math.floor(Date.now() / 1000);
    // What a compromised external broker could publish: the device's own topic, without mqota.
    const publish = (c: object) => server.mqota.services.broker.publish(topics.command(id), encodeCommand(c as never), { qos: 1 });

    await publish(command);
    await d.waitForLine(/update forged-1 refused: update command is not signed/);
    await publish(signCommand(commandKey, id, { ...command, updateId: 'forged-2' }, now - 60));
    await d.waitForLine(/update forged-2 refused: update command expired at/);
    await publish(signCommand(commandKey, 'other-lamp', { ...command, updateId: 'forged-3' }, now + 3600));
    await d.waitForLine(/update forged-3 refused: update command is for device other-lamp, not cmd-lamp/);
    const stranger = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    await publish(signCommand(stranger, id, { ...command, updateId: 'forged-4' }, now + 3600));
    await d.waitForLine(/update forged-4 refused: update command signature does not hold/);
    assert.equal((await getDevice(id)).version, '1.0.0');

    // The server's own command, signed for this device, goes through.
    const rollout = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: [id] });
    const attempt = await until(d, 'the signed update', async () => {
      const a = (await getDevice(id)).attempts.find((x: Json) => x.rolloutId === rollout.id);
      return a && isTerminal(a.state) ? a : null;
    });
    assert.equal(attempt.state, 'succeeded', d.log());
  });

  test('a device whose clock is past the command\'s expiry rejects it with command-expired', async () => {
    const id = 'late-lamp';
    const bundle = path.join(tmp, id, 'bundle');
    await cli('device', 'add', id, '--type', id, '--out', bundle);
    const factory = await file(`${id}-factory.bin`, buildEspAppImage({ projectName: id, version: '1.0.0' }));
    const d = new LinuxDevice({ bundle, state: path.join(tmp, id, 'state'), install: factory, args: ['--clock-offset-s', String(3 * 86_400)] });
    started.push(d);
    await until(d, `${id} online`, async () => (await getDevice(id)).online || null);
    const attempt = await update(d, id, signImage(buildEspAppImage({ projectName: id, version: '1.1.0' }), release));
    assert.deepEqual([attempt.state, attempt.error], ['rejected', 'command-expired'], d.log());
  });

  test('an image whose own version is not semver installs under its catalog version and is recognised after the reboot', async () => {
    const id = 'arduino-lamp';
    const d = await device(id);
    const image = signImage(buildEspAppImage({ projectName: id, version: 'heads/idf-release/v4.4-0-gd4572' }), release);
    const attempt = await update(d, id, image, '2.0.4');
    assert.equal(attempt.state, 'succeeded', d.log());
    assert.equal(attempt.targetVersion, '2.0.4');
    await d.waitForLine(/announced arduino-lamp heads\/idf-release\/v4\.4-0-gd4572/);
    const seen = await until(d, 'the announce of the new image', async () => {
      const x = await getDevice(id);
      return x.slot === 'ota_1' ? x : null;
    });
    assert.equal(seen.version, '2.0.4');
  });
});
