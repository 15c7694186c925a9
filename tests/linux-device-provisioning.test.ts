// Issue #11, the device side end to end with the real Linux device (the agent's portable core and
// its Linux port): first boot with only a claim certificate → a key made on the device, a CSR, a
// device certificate → announce → update; and a revoked device backing off longer after every
// refusal (read from the gaps the device logs, which are its ReconnectPolicy's output).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeClaimBundle, writeDeviceBundle } from '../src/cli/bundle.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { isTerminal } from '../src/rollouts/states.js';
import { eventually } from './support/eventually.js';
import { LinuxDevice, requireLinuxDevice } from './support/linux-device.js';
import { startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;

describe('mqota-linux-device: provisioning by claim and back-off after refusals', () => {
  let server: TestServer;
  let tmp: string;
  let factoryImage: string;
  const started: LinuxDevice[] = [];

  before(async () => {
    await requireLinuxDevice();
    server = await startTestServer();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-linux-provisioning-'));
    factoryImage = path.join(tmp, 'factory.bin');
    await writeFile(factoryImage, buildEspAppImage({ projectName: 'sensor', version: '1.0.0' }));
  });
  after(async () => {
    await Promise.all(started.map((d) => d.stop('SIGKILL')));
    await server?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  function boot(bundle: string, state: string, args: string[] = [], install = true): LinuxDevice {
    const device = new LinuxDevice({ bundle, state, install: install ? factoryImage : undefined, args: ['--self-test-timeout-ms', '60000', ...args] });
    started.push(device);
    return device;
  }

  async function until<T>(device: LinuxDevice, what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 60_000): Promise<T> {
    try {
      return await eventually(async () => {
        if (device.exit) throw new Error(`the device stopped while waiting for ${what}`);
        return probe();
      }, timeoutMs, what);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${device.log()}`, { cause: err });
    }
  }

  const getDevice = (id: string) => server.api.call<Json>('GET', `/api/devices/${id}`).catch(() => null);

  test('first boot with only a claim certificate: own key, CSR, device certificate, announce, update; the next boot keeps the identity', async () => {
    const created = await server.api.call<{ bundle: Json }>('POST', '/api/claims', { maxDevices: 1, type: 'sensor', expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
    const claimDir = path.join(tmp, 'claim');
    await writeClaimBundle(claimDir, created.bundle as never);
    const state = path.join(tmp, 'claimed-state');
    const id = 'lin-claimed-1';
    let device = boot(claimDir, state, ['--device-id', id]);

    const first = await until(device, `${id} announcing 1.0.0`, async () => {
      const d = await getDevice(id);
      return d?.online && d.version === '1.0.0' ? d : null;
    });
    assert.equal(first.type, 'sensor', 'registered with the claim\'s type');
    await device.waitForLine(/claim: made a new ECDSA P-256 key/);
    await device.waitForLine(new RegExp(`claim: certificate of ${id} received`));
    // It trusts what the claim bundle said: update commands only signed with the server's command key.
    assert.equal(await readFile(path.join(state, 'identity', 'command-key.pem'), 'utf8'), server.mqota.services.commandKeyPem);
    await device.waitForLine(/main: update commands: signed by the command key only/);

    // The key never left the device: the certificate is for the key in its state directory, which only the device can read.
    const keyFile = path.join(state, 'identity', 'device.key');
    assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
    const cert = new X509Certificate(await readFile(path.join(state, 'identity', 'device.crt'), 'utf8'));
    assert.equal(cert.subject, `CN=${id}\nOU=device`);
    assert.ok(cert.publicKey.equals(createPublicKey(await readFile(keyFile, 'utf8'))), 'certificate for the device-made key');
    const requests = await server.api.call<Json[]>('GET', `/api/provision-requests?claimId=${created.bundle.claimId}`);
    assert.deepEqual(requests.map((r) => [r.deviceId, r.state]), [[id, 'issued']]);

    // An update, as for any device.
    const image = path.join(tmp, 'sensor-1.1.0.bin');
    await writeFile(image, buildEspAppImage({ projectName: 'sensor', version: '1.1.0', payloadBytes: 64 * 1024 }));
    const fw = await server.api.uploadFirmware<Json>(image, {});
    const rollout = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: [id] });
    const attempt = await until(device, 'the update to finish', async () => {
      const a = (await getDevice(id))?.attempts.find((x: Json) => x.rolloutId === rollout.id);
      return a && isTerminal(a.state) ? a : null;
    }, 120_000);
    assert.equal(attempt.state, 'succeeded', device.log());
    await until(device, `${id} announcing 1.1.0`, async () => {
      const d = await getDevice(id);
      return d?.online && d.version === '1.1.0' ? d : null;
    });

    // A restart keeps the claimed identity: no second request (the claim allows one device only anyway).
    await device.stop();
    device = boot(claimDir, state, ['--device-id', id], false);
    await device.waitForLine(/mqtt: connecting to .* as lin-claimed-1/);
    assert.ok(!device.lines.some((l) => / claim: /.test(l)), 'no claim on the second boot');
    await until(device, `${id} online again`, async () => ((await getDevice(id))?.online ? true : null));
    const batch = (await server.api.call<Json[]>('GET', '/api/claims')).find((c) => c.id === created.bundle.claimId)!;
    assert.equal(batch.issued, 1);
  });

  test('a key made on the device: --make-csr, `mqota device add --csr`, a bundle without key, and the device connects with its own', async () => {
    const id = 'lin-csr-1';
    const state = path.join(tmp, 'csr-state');
    const csrFile = path.join(tmp, 'lin-csr-1.csr');
    // (--bundle is ignored with --make-csr; the test helper always passes one.)
    const make = new LinuxDevice({ bundle: 'unused', state, args: ['--device-id', id, '--make-csr', csrFile] });
    assert.deepEqual(await make.exited, { code: 0, signal: null }, make.log());
    const res = await server.api.call<{ bundle: Json }>('POST', '/api/devices', { id, type: 'sensor', csrPem: await readFile(csrFile, 'utf8') });
    assert.equal(res.bundle.keyPem, null);
    const bundle = path.join(tmp, 'csr-bundle');
    await writeDeviceBundle(bundle, res.bundle as never);
    const device = boot(bundle, state);
    await until(device, `${id} announcing 1.0.0`, async () => {
      const d = await getDevice(id);
      return d?.online && d.version === '1.0.0' ? d : null;
    });
    const cert = new X509Certificate(res.bundle.certPem);
    assert.ok(cert.publicKey.equals(createPublicKey(await readFile(path.join(state, 'identity', 'device.key'), 'utf8'))));
  });

  test('a revoked device retries after growing gaps (exponential back-off with jitter, up to the ceiling)', async () => {
    const id = 'lin-revoked-1';
    const res = await server.api.call<{ bundle: Json }>('POST', '/api/devices', { id, type: 'sensor' });
    const bundle = path.join(tmp, 'revoked-bundle');
    await writeDeviceBundle(bundle, res.bundle as never);
    // Small numbers so six refusals take seconds: 200 ms doubling to a 1600 ms ceiling.
    const device = boot(bundle, path.join(tmp, 'revoked-state'), ['--refused-backoff-ms', '200', '--refused-backoff-max-ms', '1600']);
    await until(device, `${id} online`, async () => ((await getDevice(id))?.online ? true : null));
    await server.api.call('POST', `/api/devices/${id}/revoke`, { reason: 'test' });

    const gaps = await until(device, 'six refusals in a row', async () => {
      const found = device.lines.map((l) => /mqtt: retrying in (\d+) ms \(refused (\d+) times in a row\)/.exec(l)).filter((m) => m !== null);
      return found.length >= 6 ? found.slice(0, 6).map((m) => ({ ms: Number(m![1]), n: Number(m![2]) })) : null;
    });
    assert.deepEqual(gaps.map((g) => g.n), [1, 2, 3, 4, 5, 6], 'counted in a row');
    // The policy's guarantees, whatever the random draws: refusal n waits within [step/2, step],
    // step = 200·2^(n-1) up to 1600, so every gap until the ceiling is at least the one before.
    const steps = [200, 400, 800, 1600, 1600, 1600];
    gaps.forEach((g, i) => {
      assert.ok(g.ms >= steps[i]! / 2 && g.ms <= steps[i]!, `gap ${i + 1} = ${g.ms} ms, expected ${steps[i]! / 2}-${steps[i]}`);
      if (i > 0 && i < 4) assert.ok(g.ms >= gaps[i - 1]!.ms, `gap ${i + 1} (${g.ms}) shorter than gap ${i} (${gaps[i - 1]!.ms})`);
    });
    assert.ok(gaps[3]!.ms > gaps[0]!.ms * 3, 'the gap grew');
    // Each refusal was the broker's CONNACK 5, not a network error.
    assert.ok(device.lines.filter((l) => /mqtt: connection refused: .*not authori[sz]ed/i.test(l)).length >= 6, device.log());
    // The revocation closed the live connection (a network failure, short retry); from the first
    // refusal on, no attempt was taken for a network error.
    const firstRefusal = device.lines.findIndex((l) => /retrying in \d+ ms \(refused 1 times/.test(l));
    const sixth = device.lines.findIndex((l) => /retrying in \d+ ms \(refused 6 times/.test(l));
    assert.ok(!device.lines.slice(firstRefusal, sixth).some((l) => /retrying in \d+ ms \(network\)/.test(l)), device.log());
  });
});
