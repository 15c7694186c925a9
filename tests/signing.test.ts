// Issue #11, server side: Secure Boot v2 signature blocks (the format espsecure writes, checked
// against the real espsecure when it is installed), signing keys over the API and the CLI, the
// upload policy, signed update commands and the image's own version string in commands.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { ApiError } from '../src/cli/api-client.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { describeSigningKey, readSignatureSector, SECTOR_BYTES, signImage, verifyBlock } from '../src/firmware/signature-block.js';
import { commandSigner, verifyCommand } from '../src/protocol/command-signature.js';
import { COMMAND_PUBLIC_KEY_FILE } from '../certs/command-key.js';
import { eventually } from './support/eventually.js';
import { announce, startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;
const run = promisify(execFile);

const rsa = () => generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey;
const ec = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const pem = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }).toString();
const publicPem = (k: KeyObject) => createPublicKey(k).export({ type: 'spki', format: 'pem' }).toString();

describe('Secure Boot v2 signature blocks', () => {
  const image = buildEspAppImage({ projectName: 'lamp', version: '1.0.0', payloadBytes: 10_000 });

  for (const [name, make] of [['RSA-3072-PSS', rsa], ['ECDSA P-256', ec]] as const) {
    test(`${name}: a signed image carries one block that verifies, with the key's eFuse digest`, () => {
      const key = make();
      const signed = signImage(image, key);
      assert.equal(signed.length % SECTOR_BYTES, 0);
      assert.ok(signed.subarray(0, image.length).equals(image), 'the image bytes are kept');
      assert.ok(signed.subarray(image.length, signed.length - SECTOR_BYTES).every((b) => b === 0xff), '0xFF padding to the sector');
      const sector = readSignatureSector(signed)!;
      assert.equal(sector.blocks.length, 1);
      assert.equal(sector.blocks[0].keyDigest, describeSigningKey(createPublicKey(key)).keyDigest);
      assert.ok(verifyBlock(sector.blocks[0], signed.subarray(0, sector.signedLength)));

      const tampered = Buffer.from(signed);
      tampered[100] ^= 1;
      assert.equal(verifyBlock(readSignatureSector(tampered)!.blocks[0], tampered.subarray(0, sector.signedLength)), false, 'a changed image byte');
      const badSig = Buffer.from(signed);
      badSig[sector.signedLength + 900] ^= 1; // inside the signature; the CRC then fails too
      assert.equal(readSignatureSector(badSig), null, 'a block whose CRC does not match is no block');
    });
  }

  test('a second key appends a second block (rotation); an unsigned image has no sector', () => {
    const [a, b] = [rsa(), ec()];
    const both = signImage(signImage(image, a), b);
    const sector = readSignatureSector(both)!;
    assert.deepEqual(sector.blocks.map((x) => x.algorithm), ['rsa3072-pss', 'ecdsa-p256']);
    assert.ok(sector.blocks.every((x) => verifyBlock(x, both.subarray(0, sector.signedLength))));
    assert.equal(readSignatureSector(image), null);
    assert.throws(() => signImage(image, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey), /RSA-2048 key: Secure Boot v2 signing keys are RSA-3072 or ECDSA P-256/);
  });

  test('blocks are what the real espsecure writes and reads (sign_data/verify_signature --version 2)', async (t) => {
    const python = await espsecurePython();
    if (!python) {
      t.skip('espsecure not found: set ESPSECURE_PYTHON to a python with esptool installed (the idf-build venv has it)');
      return;
    }
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-espsecure-'));
    try {
      await writeFile(path.join(dir, 'image.bin'), image);
      for (const [name, key] of [['rsa', rsa()], ['ec', ec()]] as const) {
        const keyFile = path.join(dir, `${name}.pem`);
        await writeFile(keyFile, pem(key));
        // Ours, checked by espsecure.
        await writeFile(path.join(dir, `ours-${name}.bin`), signImage(image, key));
        const verified = await run(python, ['-m', 'espsecure', 'verify_signature', '--version', '2', '--keyfile', keyFile, path.join(dir, `ours-${name}.bin`)]);
        assert.match(verified.stdout, /Signature block 0 verification successful/);
        // espsecure's, read here: same length, same block header and key part, verifies.
        await run(python, ['-m', 'espsecure', 'sign_data', '--version', '2', '--keyfile', keyFile, '--output', path.join(dir, `theirs-${name}.bin`), path.join(dir, 'image.bin')]);
        const theirs = await readFile(path.join(dir, `theirs-${name}.bin`));
        const ours = await readFile(path.join(dir, `ours-${name}.bin`));
        assert.equal(theirs.length, ours.length);
        const keyPartEnd = name === 'rsa' ? 812 : 101;
        assert.ok(theirs.subarray(-SECTOR_BYTES, -SECTOR_BYTES + keyPartEnd).equals(ours.subarray(-SECTOR_BYTES, -SECTOR_BYTES + keyPartEnd)));
        const sector = readSignatureSector(theirs)!;
        assert.ok(verifyBlock(sector.blocks[0], theirs.subarray(0, sector.signedLength)));
        // The digest espsecure burns into eFuse is ours.
        await run(python, ['-m', 'espsecure', 'digest_sbv2_public_key', '--keyfile', keyFile, '--output', path.join(dir, `${name}.digest`)]);
        assert.equal((await readFile(path.join(dir, `${name}.digest`))).toString('hex'), sector.blocks[0].keyDigest);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('signing keys, signed uploads and signed commands through a real mqota', () => {
  let server: TestServer;
  let tmp: string;
  let agent: Agent;
  const keys = { release: ec(), next: rsa(), stranger: ec() };

  before(async () => {
    server = await startTestServer({ env: { MQOTA_REQUIRE_SIGNED_IMAGES: 'true', MQOTA_COMMAND_TTL_SECONDS: '600' } });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-signing-'));
    agent = new Agent({ connect: { ca: server.pki.caPem } });
  });
  after(async () => {
    await agent?.close();
    await server?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  async function file(name: string, bytes: Buffer | string): Promise<string> {
    const p = path.join(tmp, name);
    await writeFile(p, bytes);
    return p;
  }
  const cli = (...args: string[]) => run(process.execPath, [path.resolve('bin/mqota.js'), '--server', server.mqota.publicUrl, '--token', server.config.adminToken!,
    '--ca', server.pki.paths.caCert, ...args]);
  const uploadError = async (bytes: Buffer, name: string, fields: Record<string, string> = {}) => {
    const err = await server.api.uploadFirmware(await file(name, bytes), fields).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof ApiError, `upload of ${name} was accepted`);
    assert.equal(err.statusCode, 400);
    return err.message;
  };

  test('an admin registers keys with the CLI; an operator may not; both keys are active and listed', async () => {
    const out = await cli('keys', 'add', await file('release.pem', pem(keys.release)), '--name', 'release-2027');
    assert.match(out.stdout, /signing key release-2027 \(ecdsa-p256\) registered as key_/);
    await cli('keys', 'add', await file('next.pub.pem', publicPem(keys.next)), '--name', 'release-2028');
    const listed = JSON.parse((await cli('--json', 'keys', 'list')).stdout) as Json[];
    assert.deepEqual(listed.map((k) => [k.name, k.algorithm, k.keyDigest, k.retiredAt]), [
      ['release-2027', 'ecdsa-p256', describeSigningKey(createPublicKey(keys.release)).keyDigest, null],
      ['release-2028', 'rsa3072-pss', describeSigningKey(createPublicKey(keys.next)).keyDigest, null],
    ]);
    assert.ok(!JSON.stringify(listed).includes('PRIVATE KEY'), 'only public halves are stored');

    const { token } = await server.api.call<Json>('POST', '/api/tokens', { name: 'ops', role: 'operator' });
    const res = await request(new URL('/api/keys', server.mqota.publicUrl), {
      method: 'POST', dispatcher: agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ publicKeyPem: publicPem(keys.stranger) }),
    });
    assert.equal(res.statusCode, 403);
    await res.body.dump();
    await assert.rejects(server.api.call('POST', '/api/keys', { publicKeyPem: publicPem(keys.release) }), /already registered as release-2027/);
    await assert.rejects(server.api.call('POST', '/api/keys', { publicKeyPem: 'not a key' }), /not a PEM public key/);
  });

  test('with MQOTA_REQUIRE_SIGNED_IMAGES, unsigned, tampered and unknown-key images are refused with the reason', async () => {
    const image = buildEspAppImage({ projectName: 'lamp', version: '1.0.0' });
    assert.match(await uploadError(image, 'unsigned.bin'), /no signature of a registered, active key holds: the image carries no Secure Boot v2 signature block/);
    const tampered = signImage(image, keys.release);
    tampered[64] ^= 0xff;
    assert.match(await uploadError(tampered, 'tampered.bin'), /signature block 0 \(ecdsa-p256, key digest [0-9a-f]{16}…\) does not verify: the image was changed after it was signed/);
    assert.match(await uploadError(signImage(image, keys.stranger), 'stranger.bin'), /is made by a key that is not registered \(mqota keys add\)/);
    assert.equal((await server.api.call<Json[]>('GET', '/api/firmware')).length, 0, 'nothing refused is in the catalog');
  });

  test('an image signed offline with `mqota firmware sign` is accepted and shows which key signed it', async () => {
    const unsigned = await file('lamp-1.1.0.bin', buildEspAppImage({ projectName: 'lamp', version: '1.1.0' }));
    const signedOut = path.join(tmp, 'lamp-1.1.0.signed.bin');
    const signOut = await cli('firmware', 'sign', unsigned, '--key', path.join(tmp, 'release.pem'), '--out', signedOut);
    assert.match(signOut.stdout, /signed .* with ecdsa-p256 key [0-9a-f]{64}\n {2}wrote .*\(\d+ bytes, 1 signature block\)/);
    const fw = await server.api.uploadFirmware<Json>(signedOut, {});
    assert.equal(fw.signedBy.name, 'release-2027');
    assert.deepEqual(fw.warnings, []);
    assert.deepEqual(fw.signatures.map((s: Json) => [s.index, s.algorithm, s.keyName, s.verified]), [[0, 'ecdsa-p256', 'release-2027', true]]);
    const shown = await cli('firmware', 'show', fw.id);
    assert.match(shown.stdout, /signed by release-2027\n {4}block 0: ecdsa-p256, key digest [0-9a-f]{64}, release-2027, verifies/);
  });

  test('rotation: an image signed by both keys, then the old key retired (audited) and its images refused', async () => {
    const both = signImage(signImage(buildEspAppImage({ projectName: 'lamp', version: '1.2.0' }), keys.release), keys.next);
    const fw = await server.api.uploadFirmware<Json>(await file('both.bin', both), {});
    assert.deepEqual(fw.signatures.map((s: Json) => s.keyName), ['release-2027', 'release-2028']);

    const old = (await server.api.call<Json[]>('GET', '/api/keys')).find((k) => k.name === 'release-2027')!;
    const out = await cli('keys', 'retire', old.id, '--reason', 'rotated to release-2028');
    assert.match(out.stdout, /signing key release-2027 retired at .* by admin/);
    await assert.rejects(server.api.call('POST', `/api/keys/${old.id}/retire`, {}), /was retired at/);
    await eventually(async () => (await server.api.call<Json[]>(`GET`, `/api/audit?target=${old.id}`))
      .some((e) => e.action === 'POST /api/keys/:id/retire' && e.statusCode === 200 && e.details?.reason === 'rotated to release-2028'), 5_000, 'the retirement in the audit log');

    assert.match(await uploadError(signImage(buildEspAppImage({ projectName: 'lamp', version: '1.3.0' }), keys.release), 'old-key.bin'),
      /is made by release-2027, retired /);
    const next = await server.api.uploadFirmware<Json>(await file('next.bin', signImage(buildEspAppImage({ projectName: 'lamp', version: '1.3.0' }), keys.next)), {});
    assert.equal(next.signedBy.name, 'release-2028');
    assert.equal((await server.api.call<Json>('GET', `/api/firmware/${fw.id}`)).signedBy.name, 'release-2027', 'history keeps the first verified signer');
  });

  test('update commands are signed for the device, expire, and carry the image\'s own version; bundles carry the command key', async () => {
    const image = signImage(buildEspAppImage({ projectName: 'lamp', version: 'heads/idf-release/v4.4-0-gd4572' }), keys.next);
    const fw = await server.api.uploadFirmware<Json>(await file('arduino.bin', image), { version: '2.0.4' });
    assert.equal(fw.version, '2.0.4');
    assert.deepEqual(fw.warnings, ['the catalog version 2.0.4 differs from the image\'s own version "heads/idf-release/v4.4-0-gd4572"; update commands carry both and devices check the image against "heads/idf-release/v4.4-0-gd4572"']);

    const provisioned = await server.api.call<Json>('POST', '/api/devices', { id: 'lamp-1', type: 'lamp' });
    const commandKeyPem = await readFile(path.join(server.pki.paths.dir, COMMAND_PUBLIC_KEY_FILE), 'utf8');
    assert.equal(provisioned.bundle.commandKeyPem, commandKeyPem);
    assert.deepEqual(provisioned.bundle.imageKeyDigests, [describeSigningKey(createPublicKey(keys.next)).keyDigest], 'only the active key');

    await server.api.call('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: ['lamp-1'] });
    const dev = await server.device('lamp-1');
    try {
      const before = Math.floor(Date.now() / 1000);
      const cmd = await announce(dev, 'lamp-1', { type: 'lamp', version: '1.0.0' }) as Json;
      assert.equal(cmd.action, 'update');
      assert.equal(cmd.version, '2.0.4');
      assert.equal(cmd.imageVersion, 'heads/idf-release/v4.4-0-gd4572');
      assert.ok(cmd.expires >= before + 600 && cmd.expires <= Math.floor(Date.now() / 1000) + 600, `expires ${cmd.expires}`);
      const publicKey = createPublicKey(commandKeyPem);
      assert.ok(verifyCommand(publicKey, 'lamp-1', cmd as never));
      assert.equal(verifyCommand(publicKey, 'lamp-2', cmd as never), false, 'bound to the device');
      assert.equal(verifyCommand(publicKey, 'lamp-1', { ...cmd, sha256: '0'.repeat(64) } as never), false, 'bound to the image');

      // The device then runs the image and announces its own version string: the catalog knows it.
      const after = await announce(dev, 'lamp-1', { type: 'lamp', version: 'heads/idf-release/v4.4-0-gd4572' }) as Json;
      assert.deepEqual([after.action, after.reason], ['none', 'up-to-date']);
      assert.equal((await server.api.call<Json>('GET', '/api/devices/lamp-1')).version, '2.0.4');
      const unknown = await announce(dev, 'lamp-1', { type: 'lamp', version: 'heads/something-else' }) as Json;
      assert.equal(unknown.reason, 'invalid-announce');
      assert.match(unknown.error, /not a semantic version, nor the image version of lamp firmware in the catalog/);
    } finally {
      await dev.endAsync();
    }
  });

  test('the signer passes other commands through and signs nothing when off', () => {
    const key = ec();
    const sign = commandSigner({ key, ttlSeconds: 60, now: () => 1_000_000 });
    assert.deepEqual(sign('d', { action: 'none', reason: 'up-to-date' }), { action: 'none', reason: 'up-to-date' });
    const update = { action: 'update' as const, updateId: 'u1', type: 't', version: '1.0.0', url: 'https://x/y.bin', sha256: 'a'.repeat(64), size: 10 };
    const signed = sign('d', update) as Json;
    assert.equal(signed.expires, 1060);
    assert.ok(verifyCommand(createPublicKey(key), 'd', signed as never));
    assert.deepEqual(commandSigner({ key: null, ttlSeconds: 60 })('d', update), update);
  });
});

/** A python that can run espsecure: ESPSECURE_PYTHON, or the venv idf-build.sh makes. */
async function espsecurePython(): Promise<string | null> {
  const candidates = [process.env.ESPSECURE_PYTHON, path.join(os.homedir(), '.cache/idf-build/venv/bin/python')].filter((c): c is string => !!c);
  for (const python of candidates) {
    try {
      await access(python);
      await run(python, ['-c', 'import espsecure']);
      return python;
    } catch { /* next */ }
  }
  return null;
}
