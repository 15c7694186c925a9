// The repository's batch statements against real databases (PGlite and PostgreSQL): a batch is
// one transaction, a failing batch is retried until its cause is gone (never dropped), a final
// attempt row never changes again, history rows are written once, and a rollout transition
// applies only from the state it was decided in (and `completed` only with no open attempt).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { openDatabase, type Database } from '../src/db/database.js';
import { FleetRepository, type AttemptRow, type DeviceRow } from '../src/db/fleet-repository.js';
import { isTerminal, type AttemptState } from '../src/rollouts/states.js';
import { freshPostgresDatabase } from './support/postgres.js';
import { eventually } from './support/eventually.js';

const log = pino({ level: 'silent' });

function device(id: string, version: string): DeviceRow {
  return { id, type: 'lamp', version, chip: 'esp32', idfVersion: null, secureVersion: null, slot: null, online: true, lastSeenAt: new Date(), health: null };
}

function attempt(id: string, rolloutId: string, deviceId: string, state: string, at = new Date()): AttemptRow {
  const final = isTerminal(state as AttemptState);
  return { id, rolloutId, deviceId, firmwareId: 'fw-lamp', fromVersion: '1.0.0', retry: 0, state, progress: null, error: null, reason: null,
    createdAt: at, updatedAt: at, finishedAt: final ? at : null };
}

for (const kind of ['pglite', 'postgres'] as const) {
  describe(`fleet repository on ${kind}`, () => {
    let db: Database;
    let dataDir: string;
    let repo: FleetRepository;
    const opened = (async () => {
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'mqota-repo-'));
      db = await openDatabase({ databaseUrl: kind === 'postgres' ? await freshPostgresDatabase() : null, dataDir, logger: log });
      repo = new FleetRepository(db, log, { minIntervalMs: 0, retryDelayMs: { initial: 5, max: 20 } });
      await db.prisma.firmware.create({ data: { id: 'fw-lamp', type: 'lamp', version: '2.0.0', sha256: 'a'.repeat(64), size: 1 } });
    })();

    after(async () => {
      await repo?.close();
      await db?.close();
      await rm(dataDir, { recursive: true, force: true });
    });

    const createRollout = (id: string, state = 'running') =>
      db.prisma.rollout.create({ data: { id, firmwareId: 'fw-lamp', state } });

    test('a batch is one transaction, and one that fails is retried until its cause is gone, not dropped', async () => {
      await opened;
      // The attempt's rollout does not exist yet: the foreign key refuses the batch, device row included.
      const both = Promise.all([repo.saveDevice(device('r-tx', '2.0.0')), repo.saveAttempt(attempt('u-tx', 'ro-later', 'r-tx', 'pending'))]);
      await eventually(() => repo.commitFailures >= 3, 30_000, 'failed commits being retried');
      assert.equal(await db.prisma.device.count({ where: { id: 'r-tx' } }), 0);
      assert.equal(repo.health().ok, false);
      await createRollout('ro-later');
      await both;
      assert.equal((await db.prisma.device.findUnique({ where: { id: 'r-tx' } }))?.version, '2.0.0');
      assert.equal((await db.prisma.updateAttempt.findUnique({ where: { id: 'u-tx' } }))?.state, 'pending');
      assert.equal(repo.health().ok, true);
    });

    test('a final attempt row never changes again; history rows are written once', async () => {
      await opened;
      await createRollout('ro-final');
      await repo.saveDevice(device('r-final', '1.0.0'));
      const at = new Date();
      const done = attempt('u-final', 'ro-final', 'r-final', 'succeeded', at);
      const event = { attemptId: done.id, state: 'succeeded', progress: null, error: null, reason: null, at };
      await repo.saveAttempt(done, event);
      await repo.saveAttempt(done, event); // a retried batch
      // Another instance's stale view of the attempt ends it again: neither the row nor the history takes it.
      assert.equal(await repo.saveAttempt(attempt('u-final', 'ro-final', 'r-final', 'failed'), { ...event, state: 'failed', at: new Date(at.getTime() + 1) }), false);
      assert.equal((await db.prisma.updateAttempt.findUnique({ where: { id: 'u-final' } }))?.state, 'succeeded');
      // A report that came after the end (shared among instances) is history, once however often it is resent.
      const late = { ...event, state: 'rebooting', at: new Date(at.getTime() + 2) };
      await repo.saveLateEvent(late);
      await repo.saveLateEvent({ ...late, at: new Date(at.getTime() + 3) });
      const history = await db.prisma.attemptEvent.findMany({ where: { attemptId: 'u-final' }, orderBy: { id: 'asc' } });
      assert.deepEqual(history.map((e) => e.state), ['succeeded', 'rebooting'], 'the attempt ended once; every report is in the history, once');
    });

    test('a batch larger than one statement takes every row, and tells which were refused, in whichever statement', async () => {
      await opened;
      await createRollout('ro-big');
      const ids = Array.from({ length: 2_500 }, (_, i) => `big-${String(i).padStart(4, '0')}`);
      await Promise.all(ids.map((id) => repo.saveDevice(device(id, '1.0.0'))));
      const at = new Date();
      // Already finished in the database: the second statement's row (index 1,700) is refused.
      await repo.saveAttempt(attempt('u-big-1700', 'ro-big', ids[1700]!, 'succeeded', at));
      const batch = ids.map((id, i) => {
        const row = attempt(`u-big-${i}`, 'ro-big', id, 'pending', new Date(at.getTime() + 1));
        return repo.saveAttempt(row, { attemptId: row.id, state: 'pending', progress: null, error: null, reason: null, at: row.updatedAt });
      });
      const applied = await Promise.all(batch);
      assert.deepEqual(applied.flatMap((ok, i) => ok ? [] : [i]), [1700]);
      assert.equal(await db.prisma.updateAttempt.count({ where: { rolloutId: 'ro-big', state: 'pending' } }), 2_499);
      // A refused row's report that does not end it is kept as history all the same (a late report).
      assert.equal(await db.prisma.attemptEvent.count({ where: { attempt: { rolloutId: 'ro-big' }, state: 'pending' } }), 2_500);
    });

    if (kind === 'postgres') {
      test('a batch whose connection is killed mid-way fails, the next batch works, and the process lives on', async () => {
        await opened;
        let pid = 0;
        const killed = db.batch([
          async (sql) => { pid = Number((await sql.query<{ pid: number }>('SELECT pg_backend_pid() AS pid', [])).rows[0]!.pid); },
          // Between two statements, as when PostgreSQL is stopped: the batch's connection is idle
          // and checked out of the pool, whose own error listener covers idle clients only.
          async () => {
            await db.prisma.$queryRawUnsafe(`SELECT pg_terminate_backend(${pid})`);
            await eventually(async () => Number((await db.prisma.$queryRawUnsafe<Array<{ n: bigint }>>(`SELECT count(*) AS n FROM pg_stat_activity WHERE pid = ${pid}`))[0]!.n) === 0, 30_000, 'the backend gone');
          },
          async (sql) => { await sql.query('SELECT 1', []); },
        ]);
        await assert.rejects(killed);
        await db.batch([async (sql) => { await sql.query('SELECT 1', []); }]);
        await repo.saveDevice(device('r-after-kill', '1.0.0'));
        assert.equal((await db.prisma.device.findUnique({ where: { id: 'r-after-kill' } }))?.version, '1.0.0');
      });
    }

    if (kind === 'pglite') {
      test('batch statements run prepared; a failing one leaves the session usable, and a dropped one is prepared again', async () => {
        await opened;
        const prepared = async () => (await db.prisma.$queryRawUnsafe<Array<{ statement: string; generic: bigint; custom: bigint }>>(
          'SELECT statement, generic_plans AS generic, custom_plans AS custom FROM pg_prepared_statements'));
        const upsert = async () => (await prepared()).find((p) => p.statement.includes('INSERT INTO "Device"'));
        await repo.saveDevice(device('r-prep-0', '1.0.0'));
        assert.ok(await upsert(), 'the device upsert is a prepared statement');
        // Planned once and reused: past PostgreSQL's five custom plans it runs on the generic one.
        for (let i = 1; i <= 8; i++) await repo.saveDevice(device(`r-prep-${i}`, '1.0.0'));
        const used = await upsert();
        assert.ok(Number(used!.generic) + Number(used!.custom) >= 9, `executions counted: ${JSON.stringify(used, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}`);
        assert.ok(Number(used!.generic) >= 1, 'a generic plan is reused');

        // An error inside a prepared statement (a foreign key) ends that statement only.
        await assert.rejects(db.batch([async (sql) => {
          await sql.query('INSERT INTO "RolloutTarget" ("rolloutId", "deviceId", wave) SELECT $1, $2, 0', ['no-such-rollout', 'r-prep-0']);
        }]), /foreign key/);
        await repo.saveDevice(device('r-prep-after-error', '1.0.0'));
        assert.equal((await db.prisma.device.findUnique({ where: { id: 'r-prep-after-error' } }))?.version, '1.0.0');

        // Gone (a DEALLOCATE): the next statement prepares it again, alone or in a transaction (which the group commit retries).
        await db.prisma.$executeRawUnsafe('DEALLOCATE ALL');
        assert.equal((await prepared()).length, 0);
        await repo.saveDevice(device('r-prep-redo', '2.0.0'));
        assert.equal((await db.prisma.device.findUnique({ where: { id: 'r-prep-redo' } }))?.version, '2.0.0');
        await createRollout('ro-prep');
        await db.prisma.$executeRawUnsafe('DEALLOCATE ALL');
        const failuresBefore = repo.commitFailures;
        // Queued together: one batch, one transaction, which the missing statement aborts once.
        await Promise.all([repo.saveDevice(device('r-prep-tx', '2.0.0')), repo.saveAttempt(attempt('u-prep-tx', 'ro-prep', 'r-prep-redo', 'pending'))]);
        assert.equal((await db.prisma.updateAttempt.findUnique({ where: { id: 'u-prep-tx' } }))?.state, 'pending');
        assert.equal((await db.prisma.device.findUnique({ where: { id: 'r-prep-tx' } }))?.version, '2.0.0');
        assert.ok(repo.commitFailures > failuresBefore, 'the aborted transaction was retried');
        assert.ok((await upsert()), 'prepared again');
      });

      test('the history insert and the transition are planned at each run, not prepared once for the tables of their first runs', async () => {
        await opened;
        await createRollout('ro-plan');
        await repo.saveDevice(device('r-plan', '1.0.0'));
        // More runs than PostgreSQL's five custom plans, after which a prepared statement keeps its generic one.
        for (let i = 0; i < 8; i++) {
          const at = new Date(Date.UTC(2026, 0, 1, 0, 0, i));
          await repo.saveAttempt(attempt('u-plan', 'ro-plan', 'r-plan', 'downloading', at),
            { attemptId: 'u-plan', state: 'downloading', progress: i * 10, error: null, reason: null, at });
        }
        await repo.saveLateEvent({ attemptId: 'u-plan', state: 'accepted', progress: null, error: null, reason: null, at: new Date(Date.UTC(2026, 0, 1)) });
        for (let wave = 0; wave < 8; wave++) {
          assert.equal(await repo.transition({ rolloutId: 'ro-plan', from: { state: 'running', wave }, to: { state: 'running', wave: wave + 1 },
            reason: 'next wave', actor: null, at: new Date(Date.UTC(2026, 0, 1, 1, wave)), final: false }), true);
        }
        const statements = (await db.prisma.$queryRawUnsafe<Array<{ statement: string }>>('SELECT statement FROM pg_prepared_statements')).map((p) => p.statement);
        assert.ok(statements.some((s) => s.includes('INSERT INTO "UpdateAttempt"')), 'the attempt upsert is prepared');
        assert.deepEqual(statements.filter((s) => s.includes('INSERT INTO "AttemptEvent"') || s.includes('UPDATE "Rollout"')), [],
          'no history insert or transition is kept prepared');
        assert.equal((await db.prisma.rollout.findUnique({ where: { id: 'ro-plan' } }))?.currentWave, 8);
        const history = await db.prisma.attemptEvent.findMany({ where: { attemptId: 'u-plan' }, orderBy: { id: 'asc' } });
        assert.deepEqual(history.map((e) => `${e.state} ${e.progress}`), [0, 10, 20, 30, 40, 50, 60, 70].map((p) => `downloading ${p}`).concat('accepted null'));
      });
    }

    test('a transition applies only from its state; completed only while no attempt is open', async () => {
      await opened;
      await createRollout('ro-guard');
      await repo.saveDevice(device('r-guard', '1.0.0'));
      await repo.saveAttempt(attempt('u-guard', 'ro-guard', 'r-guard', 'downloading'));
      const base = { rolloutId: 'ro-guard', reason: 'every wave finished', actor: null, at: new Date(), final: true };
      assert.equal(await repo.transition({ ...base, from: { state: 'running', wave: 0 }, to: { state: 'completed', wave: 0 } }), false);
      assert.equal((await db.prisma.rollout.findUnique({ where: { id: 'ro-guard' } }))?.state, 'running');
      await repo.saveAttempt(attempt('u-guard', 'ro-guard', 'r-guard', 'succeeded'));
      assert.equal(await repo.transition({ ...base, from: { state: 'paused', wave: 0 }, to: { state: 'completed', wave: 0 } }), false, 'not from a state it is not in');
      assert.equal(await repo.transition({ ...base, from: { state: 'running', wave: 0 }, to: { state: 'completed', wave: 0 } }), true);
      assert.equal(await repo.transition({ ...base, from: { state: 'running', wave: 0 }, to: { state: 'completed', wave: 0 } }), false, 'a retry changes nothing twice');
      const row = await db.prisma.rollout.findUnique({ where: { id: 'ro-guard' }, include: { events: true } });
      assert.equal(row?.state, 'completed');
      assert.ok(row?.finishedAt);
      assert.deepEqual(row?.events.map((e) => e.state), ['completed']);
    });

    test('a steering transition carries settings, acknowledged failures, wave start and members, only when it applies', async () => {
      await opened;
      await createRollout('ro-steer', 'paused');
      await repo.saveDevice(device('r-steer-1', '1.0.0'));
      await repo.saveDevice(device('r-steer-2', '1.0.0'));
      await db.prisma.rolloutTarget.createMany({ data: [{ rolloutId: 'ro-steer', deviceId: 'r-steer-1', wave: 0 }, { rolloutId: 'ro-steer', deviceId: 'r-steer-2', wave: 1 }] });
      await db.prisma.rollout.update({ where: { id: 'ro-steer' }, data: { reason: 'failure threshold reached', policy: { soakSeconds: 600 } } });
      const at = new Date(Date.UTC(2026, 11, 4, 4, 0, 0));
      const changes = {
        policy: { soakSeconds: 60 }, waves: { unit: 'percent', sizes: [50, 75, 100] }, acknowledged: { failures: 3, finished: 7 }, waveStartedAt: at,
        members: [{ deviceId: 'r-steer-1', retryUpTo: 1 }, { deviceId: 'r-steer-2', wave: 2 }], keepReason: true,
      };
      const base = { rolloutId: 'ro-steer', reason: 'settings edited by admin', actor: 'admin', at, final: false, changes };
      // From a state it is not in: nothing of it is written.
      assert.equal(await repo.transition({ ...base, from: { state: 'running', wave: 0 }, to: { state: 'running', wave: 0 } }), false);
      let row = await db.prisma.rollout.findUniqueOrThrow({ where: { id: 'ro-steer' }, include: { targets: { orderBy: { deviceId: 'asc' } }, events: true } });
      assert.deepEqual(row.policy, { soakSeconds: 600 });
      assert.deepEqual(row.targets.map((t) => [t.wave, t.retryUpTo]), [[0, 0], [1, 0]]);
      assert.equal(row.events.length, 0);

      assert.equal(await repo.transition({ ...base, from: { state: 'paused', wave: 0 }, to: { state: 'paused', wave: 0 } }), true);
      row = await db.prisma.rollout.findUniqueOrThrow({ where: { id: 'ro-steer' }, include: { targets: { orderBy: { deviceId: 'asc' } }, events: true } });
      assert.deepEqual(row.policy, { soakSeconds: 60 });
      assert.deepEqual(row.waves, { unit: 'percent', sizes: [50, 75, 100] });
      assert.deepEqual([row.acknowledgedFailures, row.acknowledgedFinished, row.waveStartedAt?.getTime()], [3, 7, at.getTime()]);
      assert.deepEqual(row.targets.map((t) => [t.wave, t.retryUpTo]), [[0, 1], [2, 0]]);
      assert.equal(row.reason, 'failure threshold reached', 'the rollout keeps its reason');
      assert.deepEqual(row.events.map((e) => [e.state, e.reason, e.actor]), [['paused', 'settings edited by admin', 'admin']]);

      // Without changes, nothing but the transition moves.
      assert.equal(await repo.transition({ ...base, changes: undefined, reason: 'resumed', from: { state: 'paused', wave: 0 }, to: { state: 'running', wave: 0 } }), true);
      const after = await db.prisma.rollout.findUniqueOrThrow({ where: { id: 'ro-steer' } });
      assert.deepEqual([after.state, after.reason, after.acknowledgedFailures], ['running', 'resumed', 3]);
      assert.deepEqual(after.policy, { soakSeconds: 60 });
    });
  });
}
