// Webhooks end to end: a real mqota, devices over mutual-TLS MQTT, and local HTTP receivers that
// verify each signature as a receiver would. Retries run on an injected clock: the test moves time,
// so back-off is checked exactly and nothing waits for it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { ApiError } from '../src/cli/api-client.js';
import type { AttemptEvent, RolloutEvent } from '../src/events.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { topics } from '../src/topics.js';
import { backoffMs, DEFAULT_RETRY } from '../src/webhooks/dispatcher.js';
import { encodeBody, fromAttempt, fromPresence, fromRollout } from '../src/webhooks/events.js';
import type { Clock } from '../src/webhooks/index.js';
import { sign, verify } from '../src/webhooks/signature.js';
import { checkTarget, checkUrl, isInternalAddress, TargetRefused } from '../src/webhooks/target-policy.js';
import { eventually } from './support/eventually.js';
import { endAll } from './support/mqtt.js';
import { startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;

/**
 * A clock the test moves; timers fire when it passes their time. A timer already due when it is
 * set fires at once, as a real one would: the dispatcher may arm its next timer only after the
 * test saw the try in the database and moved the clock past it.
 */
class ManualClock implements Clock {
  private timers = new Set<{ at: number; fn: () => void }>();
  constructor(public t: number) {}
  now() { return this.t; }
  setTimer(fn: () => void, ms: number) {
    const timer = { at: this.t + ms, fn };
    this.timers.add(timer);
    if (ms <= 0) setImmediate(() => { if (this.timers.delete(timer)) fn(); });
    return { cancel: () => { this.timers.delete(timer); } };
  }
  advanceTo(t: number) {
    this.t = t;
    for (const timer of [...this.timers]) if (timer.at <= t) { this.timers.delete(timer); timer.fn(); }
  }
}

interface Received { headers: http.IncomingHttpHeaders; body: string }

/** A receiver on loopback that answers each request with the next status of `statuses` (then 200). */
async function receiver(statuses: number[] = []): Promise<{ url: string; got: Received[]; close(): Promise<void> }> {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c) => { body += c; }).on('end', () => {
      got.push({ headers: req.headers, body });
      res.writeHead(statuses.shift() ?? 200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

describe('webhook rules (pure)', () => {
  test('signatures verify over timestamp and body; a changed body, another secret or an old timestamp do not', () => {
    const header = sign('s3cret-0123456789', 1_700_000_000, '{"a":1}');
    assert.match(header, /^t=1700000000,v1=[0-9a-f]{64}$/);
    assert.ok(verify('s3cret-0123456789', header, '{"a":1}', 1_700_000_010));
    assert.ok(!verify('s3cret-0123456789', header, '{"a":2}', 1_700_000_010));
    assert.ok(!verify('other-secret-0123456', header, '{"a":1}', 1_700_000_010));
    assert.ok(!verify('s3cret-0123456789', header, '{"a":1}', 1_700_000_000 + 301), 'replayed after the tolerance');
    assert.ok(!verify('s3cret-0123456789', 'garbage', '{"a":1}', 1_700_000_000));
  });

  test('back-off doubles from the base up to the cap', () => {
    const p = { maxAttempts: 10, baseDelayMs: 1000, maxDelayMs: 5000 };
    assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffMs(n, p)), [1000, 2000, 4000, 5000, 5000]);
    assert.equal(backoffMs(1, DEFAULT_RETRY), 30_000);
  });

  test('fleet events become webhook events; a new wave in the same state is not a state change', () => {
    const r: RolloutEvent = { rolloutId: 'ro_1', state: 'paused', previousState: 'running', wave: 0, reason: 'failure threshold reached: 1 of 1 finished attempts failed', actor: null, at: new Date(0) };
    assert.deepEqual(fromRollout(r).map((e) => e.event), ['rollout.state', 'rollout.failure_threshold']);
    assert.deepEqual(fromRollout({ ...r, actor: 'alice', reason: 'operator paused' }).map((e) => e.event), ['rollout.state']);
    assert.deepEqual(fromRollout({ ...r, state: 'running', previousState: 'running', reason: 'wave 2 of 3 started' }), []);
    const a: AttemptEvent = { updateId: 'u1', rolloutId: 'ro_1', deviceId: 'd1', firmwareId: 'fw', retry: 0, state: 'rolled_back', previousState: 'rebooting', progress: null, error: 'self-test-failed', reason: null, at: new Date(0) };
    assert.equal(fromAttempt(a)[0].event, 'device.rolled_back');
    assert.deepEqual(fromAttempt({ ...a, state: 'failed' }), []);
    assert.deepEqual(fromPresence({ deviceId: 'd1', online: false, at: new Date(0) }, undefined), []);
    assert.equal(fromPresence({ deviceId: 'd1', online: false, at: new Date(0) }, { updateId: 'u1', rolloutId: 'ro_1', state: 'downloading' })[0].event, 'device.offline_during_update');
    // Rebooting into the new image is the one disconnect every update has: no alert for it.
    assert.deepEqual(fromPresence({ deviceId: 'd1', online: false, at: new Date(0) }, { updateId: 'u1', rolloutId: 'ro_1', state: 'rebooting' }), []);
    const slack = JSON.parse(encodeBody(fromRollout(r)[0], 'slack', 'whd_1'));
    assert.deepEqual(Object.keys(slack), ['text']);
    assert.match(slack.text, /rollout ro_1 is paused \(was running\): failure threshold reached/);
    // The actor once: the reason of an operator's change names them already.
    assert.equal(fromRollout({ ...r, state: 'cancelled', previousState: 'paused', actor: 'alice', reason: 'cancelled by alice' })[0].text, 'mqota: rollout ro_1 is cancelled (was paused): cancelled by alice');
    assert.equal(fromRollout({ ...r, state: 'running', previousState: null, actor: 'alice', reason: 'started' })[0].text, 'mqota: rollout ro_1 is running: started — by alice');
    const json = JSON.parse(encodeBody(fromRollout(r)[0], 'json', 'whd_1'));
    assert.deepEqual({ id: json.id, event: json.event, wave: json.data.wave }, { id: 'whd_1', event: 'rollout.state', wave: 1 });
  });

  test('targets: https only, no internal addresses, unless allowed', async () => {
    const strict = { allowHttp: false, allowPrivate: false };
    for (const [url, reason] of [
      ['http://example.com/h', /only https/], ['ftp://example.com/', /must be https/], ['not a url', /not a URL/],
      ['https://127.0.0.1/h', /internal/], ['https://169.254.169.254/latest/meta-data', /internal/], ['https://10.1.2.3/', /internal/],
      ['https://192.168.1.1/', /internal/], ['https://[::1]/', /internal/], ['https://[::ffff:127.0.0.1]/', /internal/], ['https://[fd00::1]/', /internal/],
      ['https://localhost:9000/', /internal/], ['https://user:pw@example.com/', /credentials/],
    ] as const) assert.throws(() => checkUrl(url, strict), (e: Error) => e instanceof TargetRefused && reason.test(e.message), url);
    assert.equal(checkUrl('https://93.184.216.34/h', strict).hostname, '93.184.216.34');
    assert.equal(checkUrl('http://127.0.0.1:9/h', { allowHttp: true, allowPrivate: true }).port, '9');
    assert.ok(isInternalAddress('100.64.0.1') && !isInternalAddress('8.8.8.8'));
    // A name is resolved at creation, and refused if any of its addresses is internal.
    const resolver = (addrs: string[]) => async () => addrs.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    await assert.rejects(checkTarget('https://hooks.example.com/h', strict, resolver(['93.184.216.34', '10.0.0.5'])), /resolves to the internal address 10\.0\.0\.5/);
    assert.equal((await checkTarget('https://hooks.example.com/h', strict, resolver(['93.184.216.34']))).hostname, 'hooks.example.com');
  });
});

describe('webhooks over the network', () => {
  let server: TestServer;
  let tmp: string;
  const clock = new ManualClock(Date.now());
  const clients: MqttClient[] = [];
  const receivers: Array<{ close(): Promise<void> }> = [];

  before(async () => {
    server = await startTestServer({
      env: { MQOTA_WEBHOOK_ALLOW_HTTP: 'true', MQOTA_WEBHOOK_ALLOW_PRIVATE: 'true', MQOTA_ROLLOUT_TICK_MS: '50' }, webhookClock: clock,
    });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-webhooks-'));
  });
  after(async () => {
    await endAll(...clients);
    await server?.close();
    for (const r of receivers) await r.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  async function firmware(type: string, version: string): Promise<Json> {
    const file = path.join(tmp, `${type}-${version}.bin`);
    await writeFile(file, buildEspAppImage({ projectName: type, version, payloadBytes: 1024 }));
    return server.api.uploadFirmware<Json>(file, {});
  }

  async function device(id: string, type: string, version: string): Promise<{ client: MqttClient; commands: Json[] }> {
    const client = await server.device(id);
    clients.push(client);
    const commands: Json[] = [];
    client.on('message', (_t, p) => commands.push(JSON.parse(p.toString())));
    await client.publishAsync(topics.announce(id), JSON.stringify({ type, version }), { qos: 1 });
    await eventually(() => commands.length >= 1, 30_000, `${id} answered`);
    return { client, commands };
  }

  test('the API refuses http:// and internal receivers by default, and needs admin', async () => {
    const strict = await startTestServer();
    try {
      for (const [url, reason] of [['http://example.com/h', /only https/], ['https://127.0.0.1:9/h', /internal address/]] as const) {
        await assert.rejects(strict.api.call('POST', '/api/webhooks', { url, events: ['rollout.state'] }),
          (e: ApiError) => e.statusCode === 400 && reason.test(e.message));
      }
      await assert.rejects(strict.api.call('POST', '/api/webhooks', { url: 'https://example.com/h', events: ['nope'] }), (e: ApiError) => e.statusCode === 400);
      const { token } = await strict.api.call<Json>('POST', '/api/tokens', { name: 'ops', role: 'operator' });
      const res = await fetch(`${strict.mqota.publicUrl}/api/webhooks`, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: 'https://example.com/h', events: ['rollout.state'] }),
        // @ts-expect-error undici's dispatcher option: trust the test CA
        dispatcher: new (await import('undici')).Agent({ connect: { ca: strict.pki.caPem } }),
      });
      assert.equal(res.status, 403);
    } finally {
      await strict.close();
    }
  });

  test('every event kind reaches the receiver, signed; the Slack format sends text; deliveries are logged', async () => {
    const json = await receiver();
    const slack = await receiver();
    receivers.push(json, slack);
    const events = ['rollout.state', 'rollout.failure_threshold', 'device.rolled_back', 'device.offline_during_update'];
    const hook = await server.api.call<Json>('POST', '/api/webhooks', { url: json.url, events, secret: 'receiver-secret-0123456789' });
    assert.equal(hook.secret, 'receiver-secret-0123456789');
    const slackHook = await server.api.call<Json>('POST', '/api/webhooks', { url: slack.url, events: ['rollout.failure_threshold'], format: 'slack' });
    assert.match(slackHook.secret, /^[A-Za-z0-9_-]{43}$/, 'generated');
    const listed = await server.api.call<Json[]>('GET', '/api/webhooks');
    assert.deepEqual(listed.map((w) => w.id).sort(), [hook.id, slackHook.id].sort());
    assert.ok(listed.every((w) => !('secret' in w)), 'never listed');

    await firmware('wh', '1.0.0');
    const fw = await firmware('wh', '1.1.0');
    const a = await device('wh-a', 'wh', '1.0.0');
    await device('wh-b', 'wh', '1.0.0'); // never reports: the wave stays open
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: ['wh-a', 'wh-b'], failureThreshold: { count: 1 } });
    const update = await eventually(() => a.commands.find((c) => c.action === 'update'), 30_000, 'wh-a commanded');
    await a.client.publishAsync(topics.status('wh-a'), JSON.stringify({ updateId: update.updateId, state: 'accepted' }), { qos: 1 });
    await eventually(async () => (await server.api.call<Json>('GET', '/api/devices/wh-a')).attempts[0]?.state === 'accepted', 30_000, 'accepted');
    // Offline in the middle of the update...
    await endAll(a.client);
    await eventually(() => json.got.some((g) => g.headers['x-mqota-event'] === 'device.offline_during_update'), 30_000, 'offline event');
    // ...back, and the update ends in a rollback, which reaches the failure threshold.
    const back = await device('wh-a', 'wh', '1.0.0');
    await back.client.publishAsync(topics.status('wh-a'), JSON.stringify({ updateId: update.updateId, state: 'rolled_back', error: 'self-test-failed' }), { qos: 1 });
    const paused = await eventually(async () => { const x = await server.api.call<Json>('GET', `/api/rollouts/${r.id}`); return x.state === 'paused' ? x : null; }, 30_000, 'paused');
    assert.match(paused.reason, /^failure threshold reached/);

    const count = (e: string) => json.got.filter((g) => g.headers['x-mqota-event'] === e).length;
    await eventually(() => events.every((e) => count(e) >= 1) && count('rollout.state') >= 2, 30_000, 'every event kind delivered');
    for (const g of json.got) {
      assert.ok(verify('receiver-secret-0123456789', g.headers['x-mqota-signature'] as string, g.body, Math.floor(clock.now() / 1000)), `signature of ${g.body}`);
      const body = JSON.parse(g.body);
      assert.equal(body.id, g.headers['x-mqota-delivery']);
      assert.equal(body.event, g.headers['x-mqota-event']);
    }
    const bodies = json.got.map((g) => JSON.parse(g.body));
    assert.deepEqual(bodies.find((b) => b.event === 'device.rolled_back').data, {
      deviceId: 'wh-a', rolloutId: r.id, updateId: update.updateId, firmwareId: fw.id, error: 'self-test-failed', reason: null,
    });
    assert.deepEqual(bodies.filter((b) => b.event === 'rollout.state').map((b) => b.data.state), ['running', 'paused']);
    assert.equal(bodies.find((b) => b.event === 'device.offline_during_update').data.state, 'accepted');

    await eventually(() => slack.got.length === 1, 30_000, 'slack delivery');
    assert.ok(verify(slackHook.secret, slack.got[0].headers['x-mqota-signature'] as string, slack.got[0].body, Math.floor(clock.now() / 1000)));
    assert.match(JSON.parse(slack.got[0].body).text, new RegExp(`^mqota: rollout ${r.id} paused: failure threshold reached`));

    const log = await eventually(async () => {
      const d = await server.api.call<Json[]>('GET', `/api/webhooks/${hook.id}/deliveries`);
      return d.length === json.got.length && d.every((x) => x.state === 'delivered') ? d : null;
    }, 30_000, 'delivery log');
    assert.ok(log.every((d) => d.attempts === 1 && d.lastStatus === 200 && d.lastError === null));
    await server.api.call('POST', `/api/rollouts/${r.id}/cancel`);
    for (const id of [hook.id, slackHook.id]) await server.api.call('DELETE', `/api/webhooks/${id}`);
    await assert.rejects(server.api.call('GET', `/api/webhooks/${hook.id}/deliveries`), (e: ApiError) => e.statusCode === 404);
  });

  test('a failing receiver gets retries with exponential back-off, and a queued retry survives a restart', async () => {
    const failing = await receiver([500, 503, 502]);
    receivers.push(failing);
    const hook = await server.api.call<Json>('POST', '/api/webhooks', { url: failing.url, events: ['rollout.state'] });
    const deliveries = () => server.api.call<Json[]>('GET', `/api/webhooks/${hook.id}/deliveries`);
    const fw = await firmware('rt', '1.1.0');
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, startAt: new Date(Date.now() + 86_400_000).toISOString() });

    const t0 = clock.now();
    const first = await eventually(async () => { const [d] = await deliveries(); return d?.attempts === 1 ? d : null; }, 30_000, 'first try');
    assert.equal(first.state, 'pending');
    assert.match(first.lastError, /^HTTP 500/);
    assert.equal(Date.parse(first.nextAttemptAt), t0 + DEFAULT_RETRY.baseDelayMs, 'first retry after the base delay');
    assert.equal(JSON.parse(first.body).data.rolloutId, r.id);

    // Just before it is due nothing is sent; the positive control is the try at the due time.
    clock.advanceTo(t0 + DEFAULT_RETRY.baseDelayMs - 1);
    await server.restart(); // the queued retry is in the database, not in memory
    clock.advanceTo(t0 + DEFAULT_RETRY.baseDelayMs);
    const second = await eventually(async () => { const [d] = await deliveries(); return d?.attempts === 2 ? d : null; }, 30_000, 'second try, after the restart');
    assert.equal(failing.got.length, 2, 'no try before it was due, one at the due time');
    assert.match(second.lastError, /^HTTP 503/);
    const t1 = t0 + DEFAULT_RETRY.baseDelayMs;
    assert.equal(Date.parse(second.nextAttemptAt), t1 + 2 * DEFAULT_RETRY.baseDelayMs, 'the wait doubled');

    clock.advanceTo(t1 + 2 * DEFAULT_RETRY.baseDelayMs);
    const third = await eventually(async () => { const [d] = await deliveries(); return d?.attempts === 3 ? d : null; }, 30_000, 'third try');
    assert.equal(Date.parse(third.nextAttemptAt), t1 + 2 * DEFAULT_RETRY.baseDelayMs + 4 * DEFAULT_RETRY.baseDelayMs);
    clock.advanceTo(Date.parse(third.nextAttemptAt));
    const done = await eventually(async () => { const [d] = await deliveries(); return d?.state === 'delivered' ? d : null; }, 30_000, 'delivered');
    assert.equal(done.attempts, 4);
    assert.equal(done.lastStatus, 200);
    assert.equal(failing.got.length, 4);
    assert.equal(new Set(failing.got.map((g) => g.body)).size, 1, 'every try sends the same body');
    assert.equal(new Set(failing.got.map((g) => g.headers['x-mqota-delivery'])).size, 1);
    await server.api.call('POST', `/api/rollouts/${r.id}/cancel`);
  });

  test('on PostgreSQL too: queued, leased, retried after the back-off and delivered', async () => {
    const pgClock = new ManualClock(Date.now());
    const pg = await startTestServer({ database: 'postgres', env: { MQOTA_WEBHOOK_ALLOW_HTTP: 'true', MQOTA_WEBHOOK_ALLOW_PRIVATE: 'true' }, webhookClock: pgClock });
    const failing = await receiver([500]);
    receivers.push(failing);
    try {
      const hook = await pg.api.call<Json>('POST', '/api/webhooks', { url: failing.url, events: ['rollout.state'] });
      const file = path.join(tmp, 'pg-1.0.0.bin');
      await writeFile(file, buildEspAppImage({ projectName: 'pg', version: '1.0.0', payloadBytes: 1024 }));
      const fw = await pg.api.uploadFirmware<Json>(file, {});
      const t0 = pgClock.now();
      await pg.api.call('POST', '/api/rollouts', { firmwareId: fw.id, startAt: new Date(Date.now() + 86_400_000).toISOString() });
      const deliveries = () => pg.api.call<Json[]>('GET', `/api/webhooks/${hook.id}/deliveries`);
      const first = await eventually(async () => { const [d] = await deliveries(); return d?.attempts === 1 ? d : null; }, 30_000, 'first try');
      assert.equal(Date.parse(first.nextAttemptAt), t0 + DEFAULT_RETRY.baseDelayMs);
      pgClock.advanceTo(t0 + DEFAULT_RETRY.baseDelayMs);
      const done = await eventually(async () => { const [d] = await deliveries(); return d?.state === 'delivered' ? d : null; }, 30_000, 'delivered');
      assert.equal(done.attempts, 2);
      assert.equal(failing.got.length, 2);
    } finally {
      await pg.close();
    }
  });
});
