// The dashboard's history: attempts per state replayed from stored histories (pure), and version
// samples written on a real database, idempotent per interval.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { FleetHistory, replayStates } from '../src/monitoring/fleet-history.js';
import { startTestServer, type TestServer } from './support/server.js';
import { announce } from './support/server.js';
import { endAll } from './support/mqtt.js';

const at = (s: number) => new Date(1_700_000_000_000 + s * 1000);

describe('rollout timeline (pure)', () => {
  test('counts attempts per state after each change; progress in the same state changes nothing', () => {
    const t = replayStates([
      { attemptId: 'a', state: 'pending', at: at(0) }, { attemptId: 'b', state: 'pending', at: at(0) },
      { attemptId: 'a', state: 'downloading', at: at(10) }, { attemptId: 'a', state: 'downloading', at: at(11) },
      { attemptId: 'b', state: 'failed', at: at(20) }, { attemptId: 'a', state: 'succeeded', at: at(30) },
    ], at(40).getTime());
    assert.deepEqual(t.at.map((ms) => (ms - at(0).getTime()) / 1000), [0, 0, 10, 20, 30, 40]);
    assert.deepEqual(t.series, {
      pending: [1, 2, 1, 0, 0, 0], downloading: [0, 0, 1, 1, 0, 0], failed: [0, 0, 0, 1, 1, 1], succeeded: [0, 0, 0, 0, 1, 1],
    });
  });

  test('a long history is thinned to a few hundred points and still ends on the final counts', () => {
    const events = Array.from({ length: 5000 }, (_, i) => ({ attemptId: `d${i}`, state: 'succeeded', at: at(i) }));
    const t = replayStates(events, at(5000).getTime());
    assert.ok(t.at.length <= 302, `${t.at.length} points`);
    assert.equal(t.series.succeeded.at(-1), 5000);
    assert.deepEqual([...t.at].sort((x, y) => x - y), t.at, 'in time order');
  });

  test('no attempt: no points', () => {
    assert.deepEqual(replayStates([], Date.now()), { at: [], series: {} });
  });
});

describe('version samples', () => {
  let server: TestServer;
  before(async () => { server = await startTestServer(); });
  after(async () => { await server?.close(); });

  test('one row per type, version and interval, however often sampled; served as series', async () => {
    for (const [id, version] of [['vs-1', '1.0.0'], ['vs-2', '1.0.0'], ['vs-3', '1.1.0']]) {
      const c = await server.device(id);
      await announce(c, id, { type: 'vs', version });
      await endAll(c);
    }
    let now = Date.parse('2026-12-01T10:00:30Z');
    const history = new FleetHistory({ prisma: server.mqota.services.db.prisma, registry: server.mqota.services.registry, logger: pino({ level: 'silent' }), sampleMs: 60_000, now: () => now });
    await history.sample();
    await history.sample(); // same minute: nothing new
    now += 60_000;
    await history.sample();
    const series = await history.versionHistory('vs', new Date('2026-12-01T00:00:00Z'));
    assert.deepEqual(series, {
      at: [Date.parse('2026-12-01T10:00:00Z'), Date.parse('2026-12-01T10:01:00Z')],
      series: { '1.0.0': [2, 2], '1.1.0': [1, 1] },
    });
    const api = await server.api.call<{ at: number[]; series: Record<string, number[]> }>('GET', '/api/fleet/versions?type=vs&days=90');
    assert.deepEqual(api, series, 'the API serves the same samples');
  });
});
