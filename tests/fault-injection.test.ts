// Fault injection (issue #9): what mqota acknowledges is never lost, whatever fails and whenever.
//
// - kill -9 of the server at random moments during a rollout to 200 devices, three times, on
//   PGlite and on PostgreSQL: every status report a device got a PUBACK for is in its attempt's
//   history, every attempt ends exactly once, none is left unfinished once the rollout completes,
//   and the rollout's state agrees with its attempts in the database.
// - PostgreSQL stopped for 30 s while devices report: the same, without restarting mqota, and
//   /healthz says degraded (503, with the reason) while the database is away.
// - The image store's disk full during an upload: 507 naming the cause, nothing half-stored,
//   and the service goes on.
//
// The server runs as a child process (so it can be killed), the devices are real mqtt.js
// clients over mutual TLS with persistent sessions, and the final checks are SQL on the test's
// own database. The kill moments are drawn from a seeded generator: set MQOTA_FAULT_SEED to
// replay a run (the seed is printed). Everything waits for conditions, never for time, except
// the outage itself, which lasts 30 s by definition.
import { after, afterEach, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { ApiClient, ApiError } from '../src/cli/api-client.js';
import { auditRollout, describeAudit, pgliteQuery, postgresQuery, type RolloutAudit } from './support/attempt-audit.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { createTestPki, type TestPki } from './support/pki.js';
import { startPostgresCluster, type PostgresCluster } from './support/postgres-cluster.js';
import { freshPostgresDatabase } from './support/postgres.js';
import { ReportingFleet } from './support/reporting-fleet.js';
import { killAllServers, ServerProcess } from './support/server-process.js';

const SEED = Number(process.env.MQOTA_FAULT_SEED ?? randomInt(2 ** 31));
if (!Number.isSafeInteger(SEED)) throw new Error(`MQOTA_FAULT_SEED must be an integer, not '${process.env.MQOTA_FAULT_SEED}'`);
const ADMIN_TOKEN = 'fault-injection-token-0123456789';
const TYPE = 'faultfw';
const DEVICES = 200;
/** Reports a device sends for one update: accepted, downloading, downloaded, rebooting, succeeded. */
const REPORTS_PER_UPDATE = 5;
const KILLS = 3;
/** The rollouts' first wave; the second takes the rest. */
const FIRST_WAVE_PERCENT = 25;
const OUTAGE_MS = 30_000;
/** Generous: the machine is shared and slow; a healthy run needs a fraction of these. */
const ROLLOUT_TIMEOUT_MS = 120_000;
const PROGRESS_TIMEOUT_MS = 90_000;

/** mulberry32: a small seeded generator, so a failing run's kill moments can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Prints how long a test's phases took (a diagnostic for slow CI machines, never asserted). */
function stopwatch(t: TestContext): (what: string) => void {
  const started = Date.now();
  return (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);
}

interface RolloutView { id: string; state: string; counts: Record<string, number> }

let pki: TestPki;
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  console.log(`fault-injection seed ${SEED} (replay with MQOTA_FAULT_SEED=${SEED})`);
  pki = await createTestPki();
});

afterEach(async () => {
  // Whatever a test left running (it failed half-way): servers, devices, clusters, mounts, folders.
  await killAllServers();
  while (cleanups.length) await cleanups.pop()!().catch((err) => console.error('cleanup failed:', err));
});

after(async () => {
  await pki?.cleanup();
});

/** An API client for the server's current process, re-made after a restart, retrying while it is not up. */
class Api {
  private client: ApiClient | null = null;
  constructor(private readonly server: ServerProcess) {}

  async call<T>(method: 'GET' | 'POST', urlPath: string, body?: unknown): Promise<T> {
    for (let tries = 0; ; tries++) {
      this.client ??= new ApiClient({ baseUrl: this.server.publicUrl, token: ADMIN_TOKEN, caPem: pki.caPem });
      try {
        return await this.client.call<T>(method, urlPath, body);
      } catch (err) {
        if (err instanceof ApiError || tries >= 50) throw err;
        await this.reset(); // the connection died with the server: a new one, once it listens again
        await sleep(200);
      }
    }
  }

  async upload<T>(file: string, fields: Record<string, string>): Promise<T> {
    this.client ??= new ApiClient({ baseUrl: this.server.publicUrl, token: ADMIN_TOKEN, caPem: pki.caPem });
    return this.client.uploadFirmware<T>(file, fields);
  }

  async reset(): Promise<void> {
    await this.client?.close().catch(() => undefined);
    this.client = null;
  }
}

async function uploadImage(api: Api, dir: string, version: string): Promise<{ id: string }> {
  const file = path.join(dir, `${TYPE}-${version}.bin`);
  await writeFile(file, buildEspAppImage({ projectName: TYPE, version, payloadBytes: 4096 }));
  const fw = await api.upload<{ id: string }>(file, {});
  await rm(file);
  return fw;
}

/** A server with 200 devices on 1.0.0 online and a rollout of 1.1.0 (two waves) just started. */
async function rolloutToFleet(opts: { databaseUrl?: string; label: string; mark: (what: string) => void }) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `mqota-fault-${opts.label}-`));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const server = await ServerProcess.start({
    dataDir, certsDir: pki.paths.dir, caPem: pki.caPem, adminToken: ADMIN_TOKEN, databaseUrl: opts.databaseUrl,
    env: { MQOTA_ROLLOUT_TICK_MS: '100' },
  });
  cleanups.push(() => server.kill());
  opts.mark('server started');
  const api = new Api(server);
  cleanups.push(() => api.reset());
  await uploadImage(api, dataDir, '1.0.0');
  // The same ids in every test (each has a database of its own): certificates are issued and parsed once.
  const ids = Array.from({ length: DEVICES }, (_, i) => `device-${String(i).padStart(3, '0')}`);
  const fleet = await ReportingFleet.start({ pki, port: server.mqttPort, ids, type: TYPE, version: '1.0.0' });
  cleanups.push(() => fleet.close());
  opts.mark(`${DEVICES} devices online`);
  const target = await uploadImage(api, dataDir, '1.1.0');
  const rollout = await api.call<RolloutView>('POST', '/api/rollouts', { firmwareId: target.id, name: `fault-${opts.label}`, waves: [FIRST_WAVE_PERCENT, 100] });
  opts.mark(`rollout ${rollout.id} started`);
  return { dataDir, server, api, fleet, ids, rollout };
}

/** Polls the API until the rollout is neither running nor scheduled (a pause is an outcome: nobody resumes it). */
async function rolloutOutcome(api: Api, id: string, timeoutMs: number): Promise<{ view: RolloutView | null; error: string | null }> {
  const deadline = Date.now() + timeoutMs;
  let view: RolloutView | null = null;
  while (Date.now() < deadline) {
    try {
      view = await api.call<RolloutView>('GET', `/api/rollouts/${id}`);
      if (!['running', 'scheduled'].includes(view.state)) return { view, error: null };
    } catch (err) {
      return { view, error: `API: ${(err as Error).message}` };
    }
    await sleep(500);
  }
  return { view, error: `still ${view?.state} after ${timeoutMs / 1000} s, counts ${JSON.stringify(view?.counts)}` };
}

/** Reads what the database holds of the rollout against what the fleet was acknowledged, then closes the connection. */
async function auditDatabase(db: Awaited<ReturnType<typeof postgresQuery>>, rolloutId: string, fleet: ReportingFleet): Promise<RolloutAudit> {
  try {
    return await auditRollout(db.query, rolloutId, fleet.acknowledged, fleet.devices.map((d) => d.id));
  } finally {
    await db.close();
  }
}

/** The guarantees, asserted in the order that explains a failure best. */
function assertGuarantees(t: TestContext, audit: RolloutAudit, outcome: { view: RolloutView | null; error: string | null }): void {
  const summary = describeAudit(audit);
  t.diagnostic(summary.replace(/\n/g, ' | '));
  assert.equal(audit.lost.length, 0, `acknowledged reports lost:\n${summary}`);
  assert.equal(audit.endedTwice.length, 0, `attempts ended twice:\n${summary}`);
  assert.equal(audit.inconsistent.length, 0, `attempt rows disagree with their histories:\n${summary}`);
  assert.equal(outcome.error, null, `the rollout did not complete: ${outcome.error}\n${summary}`);
  assert.equal(outcome.view?.state, 'completed', `the rollout ended ${outcome.view?.state}\n${summary}`);
  assert.equal(audit.unfinished.length, 0, `the rollout is completed but attempts are not final:\n${summary}`);
  assert.equal(audit.devicesWithoutAttempt.length, 0, `target devices without an attempt:\n${summary}`);
  assert.equal(audit.rolloutState, outcome.view?.state, `the database says the rollout is ${audit.rolloutState}, the API ${outcome.view?.state}`);
  const shown = Object.fromEntries(Object.entries(outcome.view?.counts ?? {}).filter(([, n]) => n > 0));
  assert.deepEqual(shown, audit.counts, 'the API\'s attempt counts differ from the database\'s');
}

describe('kill -9 during a rollout', () => {
  const databases: { kind: 'pglite' | 'postgres' }[] = [{ kind: 'pglite' }, { kind: 'postgres' }];
  for (const { kind } of databases) {
    test(`${kind}: ${DEVICES} devices, ${KILLS} kills at random moments: nothing acknowledged is lost, every attempt ends once`, async (t) => {
      const random = seeded(SEED ^ (kind === 'pglite' ? 0x1 : 0x2));
      const mark = stopwatch(t);
      const databaseUrl = kind === 'postgres' ? await freshPostgresDatabase() : undefined;
      const { dataDir, server, api, fleet, rollout } = await rolloutToFleet({ databaseUrl, label: `kill-${kind}`, mark });

      // Kill moments: after a random number of acknowledged reports (5 % to 85 % of all of them,
      // so the rollout is under way and not over), plus a random few milliseconds.
      const total = DEVICES * REPORTS_PER_UPDATE;
      const moments = Array.from({ length: KILLS }, () => Math.floor(total * (0.05 + 0.8 * random()))).sort((a, b) => a - b);
      for (const [i, acknowledged] of moments.entries()) {
        const extraMs = Math.floor(random() * 50);
        await fleet.acknowledgedAtLeast(acknowledged, PROGRESS_TIMEOUT_MS);
        await sleep(extraMs);
        await server.kill();
        mark(`kill ${i + 1}: after ${fleet.acknowledged.length} acknowledged reports (drawn: ${acknowledged} + ${extraMs} ms), ${fleet.inProgress()} devices mid-update`);
        await api.reset();
        await server.launch();
        mark('restarted');
      }
      const outcome = await rolloutOutcome(api, rollout.id, ROLLOUT_TIMEOUT_MS);
      mark(`rollout ${outcome.view?.state ?? outcome.error}`);
      // What is durable, and only that: the server dies once more before the database is read.
      await server.kill();
      await fleet.close();
      const audit = await auditDatabase(kind === 'postgres' ? await postgresQuery(databaseUrl!) : await pgliteQuery(dataDir), rollout.id, fleet);
      assertGuarantees(t, audit, outcome);
    });
  }
});

describe('PostgreSQL stopped for 30 s while devices report', () => {
  test('nothing acknowledged is lost, /healthz says degraded, and the rollout completes without a restart', async (t) => {
    const random = seeded(SEED ^ 0x3);
    const mark = stopwatch(t);
    const cluster: PostgresCluster = await startPostgresCluster({ fsync: false });
    cleanups.push(() => cluster.stop());
    const databaseUrl = await createDatabase(cluster.adminUrl, 'mqota_fault_outage');
    const { server, api, fleet, rollout } = await rolloutToFleet({ databaseUrl, label: 'outage', mark });

    // The outage starts while the second wave (150 devices) reports, between 5 % and 50 % of its reports.
    const firstWave = (DEVICES * FIRST_WAVE_PERCENT / 100) * REPORTS_PER_UPDATE;
    const acknowledged = firstWave + Math.floor((DEVICES * REPORTS_PER_UPDATE - firstWave) * (0.05 + 0.45 * random()));
    await fleet.acknowledgedAtLeast(acknowledged, PROGRESS_TIMEOUT_MS);
    await cluster.halt();
    const before = fleet.acknowledged.length;
    const outageEnds = Date.now() + OUTAGE_MS;
    // /healthz while the database is away: polled until it says degraded, for at most the outage.
    let health: Awaited<ReturnType<ServerProcess['health']>> | { error: string } = { error: 'not asked' };
    while (Date.now() < outageEnds) {
      health = await server.health().catch((err: Error) => ({ error: err.message }));
      if ('statusCode' in health && health.statusCode === 503) break;
      await sleep(250);
    }
    await sleep(Math.max(0, outageEnds - Date.now()));
    mark(`PostgreSQL down for ${OUTAGE_MS / 1000} s from ${before} acknowledged reports (drawn: ${acknowledged}); ${fleet.acknowledged.length - before} acknowledged meanwhile; /healthz: ${JSON.stringify(health).slice(0, 300)}`);
    await cluster.resume();

    const outcome = await rolloutOutcome(api, rollout.id, ROLLOUT_TIMEOUT_MS);
    mark(`rollout ${outcome.view?.state ?? outcome.error}`);
    const audit = await auditDatabase(await postgresQuery(databaseUrl), rollout.id, fleet);
    assertGuarantees(t, audit, outcome);
    assert.ok('statusCode' in health, `/healthz did not answer while the database was down: ${JSON.stringify(health)}`);
    assert.equal(health.statusCode, 503, `/healthz answered ${health.statusCode} while the database was down`);
    assert.equal(health.body?.status, 'degraded');
    assert.equal(typeof health.body?.reason, 'string', `/healthz gave no reason: ${JSON.stringify(health.body)}`);
    assert.ok(String(health.body?.reason).length > 0);
  });
});

describe('image store disk full during an upload', () => {
  test('507 naming the cause, no partial image, and the service keeps serving', async (t) => {
    assert.equal(process.getuid?.(), 0, 'this test needs root: it mounts a small tmpfs as the image store (CI and the dev machine run tests as root)');
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mqota-fault-disk-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const imageDir = path.join(dataDir, 'firmware');
    await mkdir(imageDir);
    // Just over /healthz's 64 MiB free-space floor, so an empty store is healthy and an image fills it.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=72m,mode=0700', 'mqota-fault-images', imageDir]);
    cleanups.push(async () => execFileSync('umount', [imageDir]));
    const server = await ServerProcess.start({
      dataDir, certsDir: pki.paths.dir, caPem: pki.caPem, adminToken: ADMIN_TOKEN, env: { MQOTA_MAX_IMAGE_BYTES: String(256 * 1024 * 1024) },
    });
    cleanups.push(() => server.stop()); // before the umount (cleanups run last-in, first-out)
    const api = new Api(server);
    cleanups.push(() => api.reset());
    assert.equal((await server.health()).statusCode, 200, 'healthy before the upload');

    const big = path.join(dataDir, 'big.bin');
    await writeFile(big, Buffer.alloc(80 * 1024 * 1024, 0xa5)); // not an ESP-IDF image: the form names it
    const err = await api.upload(big, { type: TYPE, version: '2.0.0' }).then(() => null, (e: unknown) => e);
    await rm(big);
    assert.ok(err instanceof ApiError, `the upload was expected to fail with an API error, got ${err}`);
    t.diagnostic(`upload of 80 MiB into a 72 MiB store: ${err.statusCode} ${JSON.stringify(err.body)}`);
    assert.equal(err.statusCode, 507);
    assert.match(String((err.body as { message?: string }).message), /no space left|full/i);

    assert.deepEqual(await api.call('GET', '/api/firmware'), [], 'nothing in the catalog');
    assert.deepEqual(await readdir(imageDir), [], 'no file, temporary or not, left in the image store');
    const health = await server.health();
    assert.equal(health.statusCode, 200, `healthy after the failed upload (its space is free again): ${JSON.stringify(health.body)}`);

    const small = await uploadImage(api, dataDir, '1.0.0');
    assert.deepEqual((await api.call<{ id: string }[]>('GET', '/api/firmware')).map((f) => f.id), [small.id]);
    assert.equal((await readdir(imageDir)).length, 1);
    assert.equal((await server.health()).statusCode, 200);
  });
});

async function createDatabase(adminUrl: string, prefix: string): Promise<string> {
  const name = `${prefix}_${process.pid}`;
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
