// Several mqota instances over one PostgreSQL (src/cluster/): what one commits, the others know;
// one of them runs the rollout ticks, and another takes over when it stops; a device may talk to
// any of them in turn. Two real instances in this process, each with its embedded TLS broker, over
// one real PostgreSQL database. (The external-broker deployment, with a kill -9, is in
// tests/scale-out.test.ts.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { ApiClient } from '../src/cli/api-client.js';
import { topics } from '../src/topics.js';
import { endAll, nextMessage } from './support/mqtt.js';
import { eventually } from './support/eventually.js';
import { announce, report, startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;
const order = ['pending', 'sent', 'accepted', 'downloading', 'downloaded', 'rebooting', 'succeeded'];

async function upload(server: TestServer, type: string, version: string): Promise<Json> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-img-'));
  const file = path.join(dir, `${type}-${version}.bin`);
  await writeFile(file, buildEspAppImage({ projectName: type, version, payloadBytes: 32 * 1024 }));
  return server.api.uploadFirmware<Json>(file, {});
}

describe('several instances over one PostgreSQL', () => {
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    a = await startTestServer({ database: 'postgres', env: { MQOTA_INSTANCE_ID: 'inst-a', MQOTA_ROLLOUT_TICK_MS: '100' } });
    b = await startTestServer({ sameDatabaseAs: a, env: { MQOTA_INSTANCE_ID: 'inst-b', MQOTA_ROLLOUT_TICK_MS: '100' } });
  });
  after(async () => { await b?.close(); await a?.close(); });

  test('exactly one instance leads the rollout ticks', async () => {
    await eventually(() => a.mqota.services.cluster!.isLeader() !== b.mqota.services.cluster!.isLeader(), 30_000, 'one leader');
  });

  test('firmware, tokens and rollouts made on one instance are known to the other', async () => {
    const fw = await upload(b, 'valve', '2.0.0');
    await eventually(async () => (await a.api.call<Json[]>('GET', '/api/firmware')).some((f) => f.id === fw.id), 30_000, 'firmware seen by a');
    const token = await a.api.call<Json>('POST', '/api/tokens', { name: 'ci-viewer', role: 'viewer' });
    const viaB = new ApiClient({ baseUrl: b.mqota.publicUrl, token: token.token, caPem: a.pki.caPem });
    try {
      await eventually(() => viaB.call('GET', '/api/firmware').then(() => true, () => false), 30_000, 'token accepted by b');
    } finally { await viaB.close(); }
  });

  test('a device may talk to either instance: commanded by one, reporting to the other, counted once by both', async () => {
    await upload(b, 'pump', '1.0.0');
    const fw = await upload(b, 'pump', '1.1.0');
    await b.api.call('POST', '/api/devices', { id: 'pump-1', type: 'pump' });
    // The device first talks to instance a; the rollout is created on b.
    let dev = await a.device('pump-1');
    let updateId: string;
    try {
      assert.equal((await announce(dev, 'pump-1', { type: 'pump', version: '1.0.0' })).reason, 'up-to-date');
      const rollout = await b.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: ['pump-1'] });
      // a learns of the rollout through the change feed; until then it answers that nothing is newer.
      const command = await eventually(async () => {
        const c = await announce(dev, 'pump-1', { type: 'pump', version: '1.0.0' });
        return c.action === 'update' ? c : null;
      }, 30_000, 'update offered by a');
      updateId = command.updateId as string;
      await report(dev, 'pump-1', { updateId, state: 'accepted' });
      await report(dev, 'pump-1', { updateId, state: 'downloading', progress: 40 });
      await eventually(async () => (await b.api.call<Json>('GET', `/api/rollouts/${rollout.id}`)).counts?.downloading === 1, 30_000, 'b sees downloading');
    } finally { await endAll(dev); }

    // It reconnects to instance b and finishes there.
    dev = await b.device('pump-1');
    try {
      await report(dev, 'pump-1', { updateId: updateId!, state: 'downloaded' });
      await report(dev, 'pump-1', { updateId: updateId!, state: 'rebooting' });
      const answer = await announce(dev, 'pump-1', { type: 'pump', version: '1.1.0' });
      assert.equal(answer.action, 'none');
      for (const server of [a, b]) {
        const done = await eventually(async () => {
          const r = (await server.api.call<Json[]>('GET', '/api/rollouts')).find((x) => x.firmwareId === fw.id);
          return r?.state === 'completed' ? r : null;
        }, 30_000, `rollout completed, as ${server.config.instanceId} sees it`);
        assert.equal(done.counts.succeeded, 1);
        assert.equal(Object.entries(done.counts as Record<string, number>).reduce((n, [, v]) => n + v, 0), 1, 'one attempt, counted once');
      }
      const device = await a.api.call<Json>('GET', '/api/devices/pump-1');
      assert.equal(device.attempts.length, 1, 'one attempt');
      // b may have commanded it too (it sees the device online through the feed, though here the device
      // is on a's broker): the same updateId, so the history may say pending and sent twice, never backwards.
      const states = device.attempts[0].history.map((e: Json) => e.state);
      assert.deepEqual([...new Set(states)], ['pending', 'sent', 'accepted', 'downloading', 'downloaded', 'rebooting', 'succeeded']);
      assert.deepEqual(states, [...states].sort((x: string, y: string) => order.indexOf(x) - order.indexOf(y)), 'never backwards');
    } finally { await endAll(dev); }
  });

  test('steering on one instance is in force on the other: a retry granted on b, a resume on a, the offer from a', async () => {
    await upload(a, 'lamp', '1.0.0');
    const fw = await upload(a, 'lamp', '1.1.0');
    for (const id of ['lamp-1', 'lamp-2']) await a.api.call('POST', '/api/devices', { id, type: 'lamp' });
    const dev = await a.device('lamp-1'); // lamp-2 stays away: the rollout keeps running for it
    try {
      const r = await b.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, failureThreshold: { count: 1 } });
      const first = await eventually(async () => {
        const c = await announce(dev, 'lamp-1', { type: 'lamp', version: '1.0.0' });
        return c.action === 'update' ? c : null;
      }, 30_000, 'offered by a');
      await report(dev, 'lamp-1', { updateId: first.updateId, state: 'failed', error: 'flash-write' });
      for (const server of [a, b]) {
        await eventually(async () => (await server.api.call<Json>('GET', `/api/rollouts/${r.id}`)).state === 'paused', 30_000, `paused, as ${server.config.instanceId} sees it`);
      }
      assert.equal((await b.api.call<Json>('POST', `/api/rollouts/${r.id}/retry`)).retried, 1);
      assert.equal((await a.api.call<Json>('POST', `/api/rollouts/${r.id}/resume`)).state, 'running');
      // a offers again only if it knows of b's grant (and whichever leads knows of a's acknowledgement).
      const second = await eventually(async () => {
        const c = await announce(dev, 'lamp-1', { type: 'lamp', version: '1.0.0' });
        return c.action === 'update' ? c : null;
      }, 30_000, 'offered again by a after the retry granted on b');
      assert.notEqual(second.updateId, first.updateId, 'a new attempt');
      for (const state of ['accepted', 'downloading', 'downloaded', 'rebooting']) await report(dev, 'lamp-1', { updateId: second.updateId, state });
      assert.equal((await announce(dev, 'lamp-1', { type: 'lamp', version: '1.1.0' })).action, 'none');
      for (const server of [a, b]) {
        const seen = await eventually(async () => {
          const x = await server.api.call<Json>('GET', `/api/rollouts/${r.id}`);
          return x.counts.succeeded === 1 ? x : null;
        }, 30_000, `success counted by ${server.config.instanceId}`);
        assert.equal(seen.state, 'running', 'the acknowledged failure does not pause it again');
        assert.equal(seen.counts.failed, 1);
      }
    } finally { await endAll(dev); }
  });

  test('when the leader stops, the other instance takes over the ticks', async () => {
    const [leader, follower] = a.mqota.services.cluster!.isLeader() ? [a, b] : [b, a];
    await leader.mqota.services.cluster!.close(); // gives up the lock as a stopped instance does
    await eventually(() => follower.mqota.services.cluster!.isLeader(), 30_000, 'follower leads');
    // The new leader's ticks run rollouts: a scheduled rollout starts.
    const fw = await upload(follower, 'fan', '3.0.0');
    const startAt = new Date(Date.now() + 500).toISOString();
    const r = await follower.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, startAt });
    // No targets: once started it completes at the next tick, so either state shows the start.
    await eventually(async () => (await follower.api.call<Json>('GET', `/api/rollouts/${r.id}`)).state !== 'scheduled', 30_000, 'scheduled rollout started by the new leader');
    const detail = await follower.api.call<Json>('GET', `/api/rollouts/${r.id}`);
    assert.ok(detail.history.some((h: Json) => h.reason === 'start time reached'), 'started by a tick');
  });
});
