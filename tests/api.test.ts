// The operator API over HTTPS: authentication, uploads and every way they can be wrong, the
// catalog, provisioning through the CLI, fleet queries, image paths, and the service carrying on.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, readdir, readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Agent, FormData, request } from 'undici';
import { topics } from '../src/topics.js';
import { buildEspAppImage, CHIP_IDS } from '../src/firmware/test-image.js';
import { closedWithin, connectDevice, endAll } from './support/mqtt.js';
import { eventually } from './support/eventually.js';
import { announce, startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;
const run = promisify(execFile);

describe('operator API', () => {
  let server: TestServer;
  let tmp: string;
  let agent: Agent;
  const url = (p: string) => `${server.mqota.publicUrl}${p}`;
  const auth = () => ({ authorization: `Bearer ${server.config.adminToken}` });

  async function postForm(fields: Record<string, string>, file?: { bytes: Buffer; name?: string }) {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.set(k, v);
    if (file) form.set('file', new Blob([new Uint8Array(file.bytes)]), file.name ?? 'image.bin');
    const res = await request(url('/api/firmware'), { method: 'POST', dispatcher: agent, headers: auth(), body: form });
    return { status: res.statusCode, body: await res.body.json() as Json };
  }

  const firmwareFiles = async () => readdir(path.join(server.dataDir, 'firmware'));

  /** A new HTTPS client (new connections) holding a device's certificate, as the device's download would; the device is provisioned on first use. */
  const bundles = new Map<string, Json>();
  async function deviceAgent(id: string, type: string): Promise<Agent> {
    if (!bundles.has(id)) bundles.set(id, (await server.api.call<Json>('POST', '/api/devices', { id, type })).bundle);
    const b = bundles.get(id)!;
    const a = new Agent({ connect: { ca: server.pki.caPem, cert: b.certPem, key: b.keyPem } });
    agents.push(a);
    return a;
  }
  const agents: Agent[] = [];

  before(async () => {
    server = await startTestServer({ env: { MQOTA_MAX_IMAGE_BYTES: String(256 * 1024) } });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-api-'));
    agent = new Agent({ connect: { ca: server.pki.caPem } });
  });
  after(async () => { await Promise.all([agent, ...agents].map((a) => a?.close())); await server?.close(); });

  test('the API needs the bearer token; /healthz does not', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong-token' }, { authorization: 'Basic dGVzdA==' }]) {
      const res = await request(url('/api/firmware'), { dispatcher: agent, headers });
      assert.equal(res.statusCode, 401);
      assert.match((await res.body.json() as Json).message, /Bearer/);
    }
    const health = await request(url('/healthz'), { dispatcher: agent });
    assert.equal(health.statusCode, 200);
    const h = await health.body.json() as Json;
    assert.equal(h.status, 'ok');
    assert.equal(h.database.ok, true);
    assert.equal(h.broker.ok, true);
    assert.ok(h.disk.freeBytes > 0);
  });

  test('an ESP-IDF image is identified: type and version come from its app description', async () => {
    const bytes = buildEspAppImage({ projectName: 'sensor', version: 'v2.4.1', idfVersion: 'v5.3.1', chipId: CHIP_IDS.esp32s3, secureVersion: 3 });
    const { status, body } = await postForm({ channel: 'beta', notes: 'first' }, { bytes });
    assert.equal(status, 201, JSON.stringify(body));
    assert.equal(body.type, 'sensor');
    assert.equal(body.version, '2.4.1');
    assert.equal(body.channel, 'beta');
    assert.deepEqual(body.image, { chip: 'esp32s3', projectName: 'sensor', version: 'v2.4.1', idfVersion: 'v5.3.1', secureVersion: 3, buildId: null });
    assert.equal(body.size, bytes.length);
    assert.equal(body.url, url(`/firmware/${body.sha256}.bin`));
    const listed = await server.api.call<Json[]>('GET', '/api/firmware?type=sensor');
    assert.deepEqual(listed.map((f) => f.id), [body.id]);
    assert.equal((await server.api.call<Json>('GET', `/api/firmware/${body.id}`)).image.chip, 'esp32s3');
  });

  test('an image built for another chip is never sent to a device that announced its chip', async () => {
    const fw = await server.api.call<Json[]>('GET', '/api/firmware?type=sensor');
    const dev = await server.device('sensor-1');
    try {
      await announce(dev, 'sensor-1', { type: 'sensor', version: '2.0.0', chip: 'esp32' });
      const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw[0].id });
      assert.equal(r.commanded, 0);
      assert.deepEqual(await announce(dev, 'sensor-1', { type: 'sensor', version: '2.0.0', chip: 'esp32' }), { action: 'none', reason: 'chip-mismatch' });
      await server.api.call('POST', `/api/rollouts/${r.id}/cancel`);
    } finally { await endAll(dev); }
  });

  test('form and image versions must agree; an image without a semantic version needs one from the form', async () => {
    const mismatch = await postForm({ version: '2.5.0' }, { bytes: buildEspAppImage({ projectName: 'sensor', version: '2.6.0' }) });
    assert.equal(mismatch.status, 400);
    assert.match(mismatch.body.message, /2\.5\.0/);
    assert.match(mismatch.body.message, /2\.6\.0/);

    const arduino = buildEspAppImage({ projectName: 'arduino-lib-builder', version: 'heads/idf-release/v4.4-0-gd4572', idfVersion: 'v4.4.4' });
    const noVersion = await postForm({ type: 'blinky' }, { bytes: arduino });
    assert.equal(noVersion.status, 400);
    assert.match(noVersion.body.message, /version/);
    const ok = await postForm({ type: 'blinky', version: '0.3.0' }, { bytes: arduino });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    assert.equal(ok.body.type, 'blinky');
    assert.equal(ok.body.image.buildId, 'heads/idf-release/v4.4-0-gd4572');
    assert.equal(ok.body.image.projectName, 'arduino-lib-builder');
  });

  test('bad uploads get clear 4xx answers and leave nothing behind', async () => {
    const before = (await firmwareFiles()).sort();
    const raw = Buffer.from('not an esp image, just bytes');
    const cases: [Record<string, string>, { bytes: Buffer } | undefined, number, RegExp][] = [
      [{ type: 'raw', version: '1.0.0' }, { bytes: Buffer.alloc(0) }, 400, /empty/],
      [{ type: 'raw', version: 'one.two' }, { bytes: raw }, 400, /version/],
      [{ type: 'raw' }, { bytes: raw }, 400, /version/],
      [{ version: '1.0.0' }, { bytes: raw }, 400, /type/],
      [{ type: '../etc', version: '1.0.0' }, { bytes: raw }, 400, /type/],
      [{ type: 'raw', version: '1.0.0' }, undefined, 400, /file/],
      [{ type: 'raw', version: '1.0.0', colour: 'red' }, { bytes: raw }, 400, /colour/],
      [{ type: 'raw', version: '1.0.0' }, { bytes: Buffer.alloc(300 * 1024, 1) }, 413, /./],
    ];
    for (const [fields, file, status, message] of cases) {
      const res = await postForm(fields, file);
      assert.equal(res.status, status, `${JSON.stringify(fields)} → ${JSON.stringify(res.body)}`);
      assert.match(res.body.message, message);
    }
    const json = await request(url('/api/firmware'), { method: 'POST', dispatcher: agent, headers: { ...auth(), 'content-type': 'application/json' }, body: '{}' });
    assert.equal(json.statusCode, 415);
    await json.body.dump();

    const first = await postForm({ type: 'raw', version: '1.0.0' }, { bytes: raw });
    assert.equal(first.status, 201);
    const dup = await postForm({ type: 'raw', version: '1.0.0' }, { bytes: Buffer.from('other bytes') });
    assert.equal(dup.status, 409);
    assert.deepEqual((await firmwareFiles()).sort(), [...before, `${first.body.sha256}.bin`].sort());
  });

  test('an upload cut off mid-stream leaves no file and the service carries on', async () => {
    const before = (await firmwareFiles()).sort();
    const boundary = 'mqotaboundary';
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nraw\r\n--${boundary}\r\nContent-Disposition: form-data; name="version"\r\n\r\n9.9.9\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
    const { port } = new URL(server.mqota.publicUrl);
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: Number(port), ca: server.pki.caPem, servername: '127.0.0.1' }, () => {
        s.write(`POST /api/firmware HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${server.config.adminToken}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: 200000\r\n\r\n${head}`);
        s.write(Buffer.alloc(64 * 1024, 7), () => resolve(s));
      });
      s.once('error', reject);
    });
    // The server is writing the image (its temp file is there), then the client goes away.
    const partial = await eventually(async () => (await firmwareFiles()).find((f) => !before.includes(f)), 30_000, 'the upload under way');
    assert.match(partial, /^\.upload-.*\.part$/);
    socket.on('error', () => undefined);
    socket.destroy();
    await eventually(async () => JSON.stringify((await firmwareFiles()).sort()) === JSON.stringify(before), 30_000, 'the partial file removed');
    assert.equal((await server.api.call<Json[]>('GET', '/api/firmware?type=raw')).some((f) => f.version === '9.9.9'), false);
    assert.equal((await request(url('/healthz'), { dispatcher: agent })).statusCode, 200);
  });

  test('image paths: only <sha256>.bin names are served; tricks get 404', async () => {
    const [fw] = await server.api.call<Json[]>('GET', '/api/firmware?type=raw');
    // As a device fetches it: with its client certificate.
    const agent = await deviceAgent('raw-img', 'raw');
    const ok = await request(url(`/firmware/${fw.sha256}.bin`), { dispatcher: agent });
    assert.equal(ok.statusCode, 200);
    await ok.body.dump();
    for (const p of ['/firmware/..%2F..%2Fpackage.json', '/firmware/%2e%2e%2fadmin-token', `/firmware/${fw.sha256.toUpperCase()}.bin`,
      '/firmware/abc.bin', `/firmware/${fw.sha256}.bin%00.txt`, `/firmware/${'0'.repeat(64)}.bin`, '/firmware/', '/firmware/../data/admin-token']) {
      const res = await request(url(p), { dispatcher: agent });
      assert.equal(res.statusCode, 404, p);
      const body = await res.body.text();
      assert.ok(!body.includes(server.config.adminToken!), p);
    }
    const cached = await request(url(`/firmware/${fw.sha256}.bin`), { dispatcher: agent, headers: { 'if-none-match': `"${fw.sha256}"` } });
    assert.equal(cached.statusCode, 304);
    await cached.body.dump();
    // A resume is only honoured for the same image: a stale If-Range gets the whole file.
    const resumed = await request(url(`/firmware/${fw.sha256}.bin`), { dispatcher: agent, headers: { range: 'bytes=4-', 'if-range': `"${fw.sha256}"` } });
    assert.equal(resumed.statusCode, 206);
    assert.equal((await resumed.body.arrayBuffer()).byteLength, fw.size - 4);
    const stale = await request(url(`/firmware/${fw.sha256}.bin`), { dispatcher: agent, headers: { range: 'bytes=4-', 'if-range': '"0000"' } });
    assert.equal(stale.statusCode, 200);
    assert.equal((await stale.body.arrayBuffer()).byteLength, fw.size);
    const unsatisfiable = await request(url(`/firmware/${fw.sha256}.bin`), { dispatcher: agent, headers: { range: `bytes=${fw.size + 10}-` } });
    assert.equal(unsatisfiable.statusCode, 416);
    assert.equal(unsatisfiable.headers['content-range'], `bytes */${fw.size}`);
    await unsatisfiable.body.dump();
  });

  test('image bytes: whole, ranges and suffix ranges are the stored bytes, served again from memory', async () => {
    // Larger than one 64 KiB write of the image route, so ranges cross slices.
    const stored = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 251));
    const upload = await postForm({ type: 'bulky', version: '1.0.0' }, { bytes: stored });
    assert.equal(upload.status, 201, JSON.stringify(upload.body));
    const fw = upload.body;
    const agent = await deviceAgent('bulky-1', 'bulky');
    const get = async (headers: Record<string, string> = {}) => {
      const res = await request(url(`/firmware/${fw.sha256}.bin`), { dispatcher: agent, headers });
      return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
    };
    // Twice: the first read fills the image cache, the second is answered from it.
    for (let round = 0; round < 2; round++) {
      const whole = await get();
      assert.equal(whole.status, 200);
      assert.equal(whole.headers['content-length'], String(fw.size));
      assert.equal(whole.headers['accept-ranges'], 'bytes');
      assert.equal(whole.headers.etag, `"${fw.sha256}"`);
      assert.equal(createHash('sha256').update(whole.body).digest('hex'), fw.sha256);
      const middle = await get({ range: 'bytes=100-70099' });
      assert.equal(middle.status, 206);
      assert.equal(middle.headers['content-range'], `bytes 100-70099/${fw.size}`);
      assert.deepEqual(middle.body, stored.subarray(100, 70100));
      const tail = await get({ range: 'bytes=-10' });
      assert.equal(tail.status, 206);
      assert.equal(tail.headers['content-range'], `bytes ${fw.size - 10}-${fw.size - 1}/${fw.size}`);
      assert.deepEqual(tail.body, stored.subarray(fw.size - 10));
      const past = await get({ range: `bytes=10-${fw.size + 1000}` });
      assert.equal(past.status, 206);
      assert.deepEqual(past.body, stored.subarray(10));
      // Several ranges, or a malformed one: the whole image.
      assert.equal((await get({ range: 'bytes=0-1,5-6' })).body.length, fw.size);
      assert.equal((await get({ range: 'bytes=9-3' })).status, 200);
    }
  });

  test('who may download an image: a device of its type with its certificate, or a token holder', async () => {
    const [fw] = await server.api.call<Json[]>('GET', '/api/firmware?type=raw');
    const image = url(`/firmware/${fw.sha256}.bin`);
    const status = async (dispatcher: Agent, headers: Record<string, string> = {}) => {
      const res = await request(image, { dispatcher, headers });
      await res.body.dump();
      return res.statusCode;
    };
    assert.equal(await status(agent), 401, 'no certificate, no token');
    assert.equal(await status(agent, { authorization: 'Bearer not-a-token' }), 401);
    const { token } = await server.api.call<Json>('POST', '/api/tokens', { name: 'img-viewer', role: 'viewer' });
    assert.equal(await status(agent, { authorization: `Bearer ${token}` }), 200, 'a viewer token');

    assert.equal(await status(await deviceAgent('raw-dl', 'raw')), 200, 'a device of the image\'s type');
    assert.equal(await status(await deviceAgent('lamp-dl', 'lamp')), 403, 'a device of another type');
    const foreign = await server.pki.issueForeign('raw-dl');
    assert.equal(await status(new Agent({ connect: { ca: server.pki.caPem, cert: foreign.certPem, key: foreign.keyPem } })), 401, 'another CA');

    const revoked = await deviceAgent('raw-rv', 'raw');
    assert.equal(await status(revoked), 200);
    await server.api.call('POST', '/api/devices/raw-rv/revoke', {});
    assert.equal(await status(await deviceAgent('raw-rv', 'raw')), 401, 'a revoked certificate');
  });

  test('a device keeps its registered type: an announce of another type changes nothing; an admin can change it, audited', async () => {
    const [raw] = await server.api.call<Json[]>('GET', '/api/firmware?type=raw');
    const [blinky] = await server.api.call<Json[]>('GET', '/api/firmware?type=blinky');
    const status = async (dispatcher: Agent, fw: Json) => {
      const res = await request(url(`/firmware/${fw.sha256}.bin`), { dispatcher });
      await res.body.dump();
      return res.statusCode;
    };
    const agentOf = await deviceAgent('typed-1', 'blinky'); // registered as blinky
    const dev = await server.device('typed-1');
    try {
      const answer = await announce(dev, 'typed-1', { type: 'raw', version: '0.0.1' });
      assert.equal(answer.action, 'none');
      assert.equal(answer.reason, 'type-mismatch');
      const stored = await server.api.call<Json>('GET', '/api/devices/typed-1');
      assert.equal(stored.type, 'blinky');
      assert.equal(stored.online, true, 'its presence is still recorded');
      assert.equal(await status(agentOf, raw), 403, 'the announced type grants no images');
      assert.equal(await status(agentOf, blinky), 200, 'its own type\'s images stay available');
      const metrics = await server.api.call<string>('GET', '/metrics');
      assert.match(String(metrics), /mqota_device_message_rejections_total\{kind="announce",reason="type-mismatch"\} [1-9]/);

      // Only an admin changes a type, and it is audited.
      const { token } = await server.api.call<Json>('POST', '/api/tokens', { name: 'typer', role: 'operator' });
      const res = await request(url('/api/devices/typed-1/type'), { method: 'PUT', dispatcher: agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ type: 'raw' }) });
      await res.body.dump();
      assert.equal(res.statusCode, 403);
      assert.equal((await server.api.call<Json>('PUT', '/api/devices/typed-1/type', { type: 'raw' })).type, 'raw');
      assert.equal(await status(agentOf, raw), 200);
      await eventually(async () => (await server.api.call<Json[]>('GET', '/api/audit?target=typed-1'))
        .some((e) => e.action === 'PUT /api/devices/:id/type' && e.statusCode === 200 && e.actor === 'admin'), 5_000, 'the change in the audit log');
      const again = await announce(dev, 'typed-1', { type: 'raw', version: '0.0.1' });
      assert.notEqual(again.reason, 'type-mismatch');
    } finally { await endAll(dev); }
  });

  test('a device provisioned without a type takes the type of its first announce, then keeps it', async () => {
    const created = await server.api.call<Json>('POST', '/api/devices', { id: 'untyped-1' });
    assert.equal(created.device.type, null);
    assert.equal(created.bundle.type, null);
    const dev = await server.device('untyped-1');
    try {
      const first = await announce(dev, 'untyped-1', { type: 'blinky', version: '0.0.1' });
      assert.notEqual(first.reason, 'type-mismatch');
      assert.equal((await server.api.call<Json>('GET', '/api/devices/untyped-1')).type, 'blinky');
      const other = await announce(dev, 'untyped-1', { type: 'raw', version: '0.0.1' });
      assert.equal(other.reason, 'type-mismatch');
      assert.equal((await server.api.call<Json>('GET', '/api/devices/untyped-1')).type, 'blinky');
    } finally { await endAll(dev); }
  });

  test('firmware used by a running rollout cannot be deleted; otherwise deletion removes the file', async () => {
    const dev = await server.device('raw-1');
    try {
      await announce(dev, 'raw-1', { type: 'raw', version: '0.9.0' });
      const fw = (await server.api.call<Json[]>('GET', '/api/firmware?type=raw'))[0];
      const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: ['raw-1'] });
      await assert.rejects(server.api.call('DELETE', `/api/firmware/${fw.id}`), (e: any) => e.statusCode === 409);
      await server.api.call('POST', `/api/rollouts/${r.id}/cancel`);
      // Downloaded once, so the image is in memory too (image-cache.ts): deletion must reach both.
      const download = () => request(url(`/firmware/${fw.sha256}.bin`), { dispatcher: agent, headers: { authorization: `Bearer ${server.config.adminToken}` } });
      const before = await download();
      assert.equal(before.statusCode, 200);
      await before.body.dump();
      await server.api.call('DELETE', `/api/firmware/${fw.id}`);
      await assert.rejects(server.api.call('GET', `/api/firmware/${fw.id}`), (e: any) => e.statusCode === 404);
      const after = await download();
      assert.equal(after.statusCode, 404);
      await after.body.dump();
      assert.ok(!(await firmwareFiles()).includes(`${fw.sha256}.bin`));
      // The rollout's history stays readable after the firmware is gone.
      assert.equal((await server.api.call<Json>('GET', `/api/rollouts/${r.id}`)).state, 'cancelled');
    } finally { await endAll(dev); }
  });

  test('rollouts refuse unknown devices, devices of another type and unknown firmware', async () => {
    const [fw] = await server.api.call<Json[]>('GET', '/api/firmware?type=blinky');
    await assert.rejects(server.api.call('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: ['nobody'] }), (e: any) => e.statusCode === 400 && /nobody/.test(e.message));
    await assert.rejects(server.api.call('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: ['raw-1'] }), (e: any) => e.statusCode === 400 && /another type/.test(e.message));
    await assert.rejects(server.api.call('POST', '/api/rollouts', { firmwareId: 'fw_missing' }), (e: any) => e.statusCode === 404);
    await assert.rejects(server.api.call('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: [] }), (e: any) => e.statusCode === 400);
    // A misspelt field is refused by name, not dropped: `wave` would otherwise roll out to everyone at once.
    await assert.rejects(server.api.call('POST', '/api/rollouts', { firmwareId: fw.id, wave: [10, 100] }), (e: any) => e.statusCode === 400 && /unknown field "wave"/.test(e.message));
    await assert.rejects(server.api.call('POST', '/api/devices', { id: 'extra-1', type: 'blinky', colour: 'red' }), (e: any) => e.statusCode === 400 && /unknown field "colour"/.test(e.message));
    await assert.rejects(server.api.call('GET', '/api/devices/extra-1'), (e: any) => e.statusCode === 404);
    await assert.rejects(server.api.call('GET', '/api/rollouts/ro_missing'), (e: any) => e.statusCode === 404);
    const list = await server.api.call<Json[]>('GET', '/api/rollouts?state=cancelled');
    assert.ok(list.length >= 2 && list.every((r) => r.state === 'cancelled'));
  });

  test('mqota device add writes a bundle the device connects with', async () => {
    const out = path.join(tmp, 'bundle');
    const cli = path.resolve('bin/mqota.js');
    const args = [cli, '--server', server.mqota.publicUrl, '--token', server.config.adminToken!, '--ca', server.pki.paths.caCert, 'device', 'add', 'door-7', '--type', 'door', '--out', out];
    const { stdout } = await run(process.execPath, args);
    assert.match(stdout, /door-7/);
    const [cert, key, ca, meta, nvs] = await Promise.all(['device.crt', 'device.key', 'ca.crt', 'device.json', 'nvs.csv'].map((f) => readFile(path.join(out, f), 'utf8')));
    assert.equal((await stat(path.join(out, 'device.key'))).mode & 0o777, 0o600);
    const x = new X509Certificate(cert);
    assert.match(x.subject, /CN=door-7/);
    assert.equal(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(ca, server.pki.caPem);
    assert.deepEqual(JSON.parse(meta), { deviceId: 'door-7', type: 'door', brokerUrl: `mqtts://127.0.0.1:${server.mqota.mqttPort}` });
    assert.match(nvs, /^client_cert,file,string,device.crt$/m);

    const dev = await connectDevice('door-7', { port: server.mqota.mqttPort, pki: server.pki, credentials: { certPem: cert, keyPem: key, caPem: ca } });
    try {
      await dev.subscribeAsync(topics.command('door-7'), { qos: 1 });
      assert.deepEqual(await announce(dev, 'door-7', { type: 'door', version: '1.0.0' }), { action: 'none', reason: 'unknown-type' });
    } finally { await endAll(dev); }
    await assert.rejects(run(process.execPath, args), (e: any) => /already exists/.test(e.stderr));
  });

  test('devices can be filtered by type, version range and presence', async () => {
    const ids = (q: string) => server.api.call<Json[]>('GET', `/api/devices${q}`).then((r) => r.map((d) => d.id));
    assert.deepEqual(await ids('?type=door'), ['door-7']);
    assert.deepEqual(await ids('?type=sensor&version=^2.0.0'), ['sensor-1']);
    assert.deepEqual(await ids('?type=sensor&version=>=3'), []);
    assert.ok(!(await ids('?online=true')).includes('sensor-1'));
    await assert.rejects(server.api.call('GET', '/api/devices?version=banana'), (e: any) => e.statusCode === 400);
    await assert.rejects(server.api.call('GET', '/api/devices/nobody'), (e: any) => e.statusCode === 404);
  });

  test('oversized MQTT packets close only that connection; oversized JSON is an invalid announce', async () => {
    const big = await server.device('big-1');
    const other = await server.device('small-1');
    try {
      const closed = closedWithin(big);
      big.publish(topics.announce('big-1'), Buffer.alloc(80 * 1024, 0x20), { qos: 0 });
      assert.equal(await closed, true);
      const padded = JSON.stringify({ type: 'door', version: '1.0.0', idf: 'x'.repeat(5000) });
      const answer = await announce(other, 'small-1', padded);
      assert.equal(answer.reason, 'invalid-announce');
      assert.deepEqual(await announce(other, 'small-1', { type: 'door', version: '1.0.0' }), { action: 'none', reason: 'unknown-type' });
    } finally { await endAll(big, other); }
  });

  test('bad configuration is refused with a message naming the variable', async () => {
    const { loadConfig } = await import('../src/config.js');
    assert.throws(() => loadConfig({ MQTT_PORT: '99999' }), /MQTT_PORT/);
    assert.throws(() => loadConfig({ DATABASE_URL: 'mysql://x' }), /DATABASE_URL/);
    assert.throws(() => loadConfig({ PUBLIC_URL: 'http://plain' }), /PUBLIC_URL/);
    assert.throws(() => loadConfig({ MQOTA_ADMIN_TOKEN: 'short' }), /MQOTA_ADMIN_TOKEN/);
    assert.equal(loadConfig({}).mqttPlaintextPort, null);
    assert.equal(loadConfig({}).imageAccess, 'certificate');
    assert.equal(loadConfig({}).heapGrowingPercent, 100);
    assert.throws(() => loadConfig({ MQOTA_HEAP_GROWING_PERCENT: '-1' }), /MQOTA_HEAP_GROWING_PERCENT/);
    assert.throws(() => loadConfig({ MQOTA_IMAGE_ACCESS: 'open' }), /MQOTA_IMAGE_ACCESS/);
    assert.deepEqual(loadConfig({}).broker, { mode: 'embedded' });
    assert.throws(() => loadConfig({ MQOTA_BROKER: 'external' }), /MQOTA_BROKER_URL/);
    assert.throws(() => loadConfig({ MQOTA_BROKER: 'external', MQOTA_BROKER_URL: 'mqtt://plain:1883' }), /MQOTA_BROKER_URL/);
    assert.throws(() => loadConfig({ MQOTA_BROKER_URL: 'mqtts://b:8883' }), /MQOTA_BROKER_URL is set but MQOTA_BROKER is embedded/);
    assert.throws(() => loadConfig({ MQOTA_BROKER: 'cloud' }), /MQOTA_BROKER/);
    const external = loadConfig({ MQOTA_BROKER: 'external', MQOTA_BROKER_URL: 'mqtts://broker.example:8883' }).broker;
    assert.equal(external.mode === 'external' && `${external.url} ${external.serviceId} ${external.caFile} ${external.configDir}`, 'mqtts://broker.example:8883 mqota null null');
  });
});

describe('MQOTA_IMAGE_ACCESS=public', () => {
  let server: TestServer;
  before(async () => { server = await startTestServer({ env: { MQOTA_IMAGE_ACCESS: 'public' } }); });
  after(async () => { await server?.close(); });

  test('images download without a certificate or token (a CDN or mirror in front); the API still needs its token', async () => {
    const form = new FormData();
    form.set('file', new Blob([new Uint8Array(buildEspAppImage({ projectName: 'pub', version: '1.0.0' }))]), 'pub.bin');
    const fw = await server.api.call<Json>('GET', `/api/firmware/${(await request(`${server.mqota.publicUrl}/api/firmware`, {
      method: 'POST', dispatcher: new Agent({ connect: { ca: server.pki.caPem } }), headers: { authorization: `Bearer ${server.config.adminToken}` }, body: form,
    }).then((r) => r.body.json() as Promise<Json>)).id}`);
    const agent = new Agent({ connect: { ca: server.pki.caPem } });
    try {
      const res = await request(`${server.mqota.publicUrl}/firmware/${fw.sha256}.bin`, { dispatcher: agent });
      assert.equal(res.statusCode, 200);
      assert.equal((await res.body.arrayBuffer()).byteLength, fw.size);
      const api = await request(`${server.mqota.publicUrl}/api/firmware`, { dispatcher: agent });
      assert.equal(api.statusCode, 401);
      await api.body.dump();
    } finally {
      await agent.close();
    }
  });
});
