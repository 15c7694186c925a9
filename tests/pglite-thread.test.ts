// The PGlite worker speaks PostgreSQL's wire protocol itself (pglite-worker.ts): statements in two
// calls, transactions by BEGIN/COMMIT messages under PGlite's locks. What that must keep: values
// written and read by their types, a failed statement ending only itself, a failed transaction
// keeping nothing, a failed COMMIT reported, and a statement from outside a transaction waiting
// for it to end; and a COMMIT synced to disk.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openPgliteThread, type PGliteThread } from '../src/db/pglite-thread.js';
import { eventually } from './support/eventually.js';

describe('PGlite worker', () => {
  let dir: string;
  let db: PGliteThread;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-pglite-thread-'));
    db = await openPgliteThread(dir);
    await db.exec('CREATE TABLE item (id int PRIMARY KEY, parent int REFERENCES item (id) DEFERRABLE INITIALLY DEFERRED, note text)');
  });
  after(async () => {
    await db?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const ids = async () => (await db.query<{ id: number }>('SELECT id FROM item ORDER BY id')).rows.map((r) => r.id);

  test('values go in and come back by their types, named or unnamed', async () => {
    const at = new Date('2026-12-05T10:00:00.123Z');
    const sql = 'SELECT $1::timestamptz AS at, $2::jsonb AS doc, $3::bool AS yes, $4::text AS nothing, $5::bytea AS bin, $6::int AS n, $7::text[] AS tags';
    const params = [at, { a: [1, 'two'] }, true, null, new Uint8Array([0, 255, 7]), 42, ['red', 'a "quoted", one']];
    for (const r of [await db.query<Record<string, unknown>>(sql, params), await db.queryPrepared<Record<string, unknown>>(sql, params)]) {
      assert.deepEqual(r.rows, [{ at, doc: { a: [1, 'two'] }, yes: true, nothing: null, bin: new Uint8Array([0, 255, 7]), n: 42, tags: ['red', 'a "quoted", one'] }]);
    }
    const inserted = await db.queryPrepared('INSERT INTO item (id, note) VALUES ($1, $2), ($3, $4)', [1, 'one', 2, 'two']);
    assert.equal(inserted.affectedRows, 2);
  });

  test('several statements on the simple protocol give a result each', async () => {
    const results = await db.exec("INSERT INTO item (id, note) VALUES (3, 'three'); SELECT note FROM item WHERE id >= 2 ORDER BY id");
    assert.equal(results.length, 2);
    assert.deepEqual(results[1]!.rows, [{ note: 'two' }, { note: 'three' }]);
  });

  test('a statement that fails to parse or to run ends itself only, outside and inside a transaction', async () => {
    await assert.rejects(db.query('SELEC 1'), /syntax error/);
    await assert.rejects(db.queryPrepared('SELECT 1 / $1::int', [0]), /division by zero/);
    assert.deepEqual((await db.query('SELECT 1 / $1::int AS q', [1])).rows, [{ q: 1 }]);

    // The caller rolls back after a failed statement; nothing the transaction wrote is kept.
    await assert.rejects(db.transaction(async (tx) => {
      await tx.queryPrepared('INSERT INTO item (id) VALUES ($1)', [10]);
      await tx.query('SELECT 1 / $1::int', [0]);
    }), /division by zero/);
    assert.deepEqual(await ids(), [1, 2, 3]);

    const committed = await db.transaction(async (tx) => {
      await tx.queryPrepared('INSERT INTO item (id) VALUES ($1)', [11]);
      return (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM item')).rows[0]!.n;
    });
    assert.equal(committed, 4);
    assert.deepEqual(await ids(), [1, 2, 3, 11]);
  });

  test('a COMMIT that fails is reported, and the transaction keeps nothing', async () => {
    // The foreign key is checked at COMMIT (deferred): both statements run, the COMMIT fails.
    await assert.rejects(db.transaction(async (tx) => {
      await tx.query('INSERT INTO item (id, parent) VALUES ($1, $2)', [20, 99]);
      await tx.query('INSERT INTO item (id) VALUES ($1)', [21]);
    }), /foreign key/);
    assert.deepEqual(await ids(), [1, 2, 3, 11]);
    // And the next transaction works.
    await db.transaction(async (tx) => { await tx.query('INSERT INTO item (id, parent) VALUES ($1, $2)', [22, 1]); });
    assert.deepEqual(await ids(), [1, 2, 3, 11, 22]);
  });

  test('a COMMIT reaches the disk: PostgreSQL runs with fsync, and syncs the WAL at each commit', async () => {
    const settings = await db.query<{ fsync: string }>('SHOW fsync');
    assert.deepEqual(settings.rows, [{ fsync: 'on' }]);
    assert.deepEqual((await db.query('SHOW wal_sync_method')).rows, [{ wal_sync_method: 'fsync' }]);
    for (const commit of [
      () => db.queryPrepared('INSERT INTO item (id) VALUES ($1)', [40]),
      () => db.transaction(async (tx) => { await tx.query('INSERT INTO item (id) VALUES ($1)', [41]); }),
    ]) {
      const before = await db.fsyncs();
      await commit();
      assert.ok(await db.fsyncs() > before, 'the commit synced the WAL');
    }
    // A statement that writes nothing commits nothing to sync.
    const before = await db.fsyncs();
    await db.query('SELECT count(*) FROM item');
    assert.equal(await db.fsyncs(), before);
  });

  test('a statement from outside waits for an open transaction to end, and then sees what it committed', async () => {
    let outside: Promise<number[]> | undefined;
    await db.transaction(async (tx) => {
      await tx.query('INSERT INTO item (id) VALUES ($1)', [30]);
      outside = ids();
      // Another statement of the transaction still runs while the outside one waits.
      await tx.query('INSERT INTO item (id) VALUES ($1)', [31]);
    });
    assert.deepEqual(await outside, [1, 2, 3, 11, 22, 30, 31, 40, 41]);
  });
});

describe('PGlite worker on a disk whose fsync fails', { timeout: 120_000 }, () => {
  let dir: string;
  let db: PGliteThread | undefined;
  after(async () => {
    await db?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('the commit that meets it fails; requests then fail at once, saying why, until a new worker has recovered from the WAL', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-pglite-fsync-'));
    db = await openPgliteThread(dir);
    await db.exec('CREATE TABLE item (id int PRIMARY KEY)');
    await db.query('INSERT INTO item (id) VALUES ($1)', [1]);
    await db.failFsyncs();
    // Not acknowledged. (Its WAL record may still have reached the file: PostgreSQL does not say.)
    await assert.rejects(db.query('INSERT INTO item (id) VALUES ($1)', [2]), /could not fsync/);
    // PostgreSQL PANICked, and PGlite would wait forever on the next call: it fails with the cause.
    await assert.rejects(db.query('SELECT 1'), /PANIC: could not fsync/);
    // A new worker opens the same folder (its disk does not fail); what was committed is there.
    const rows = await eventually(async () => {
      try { return (await db!.query<{ id: number }>('SELECT id FROM item ORDER BY id')).rows.map((r) => r.id); } catch { return null; }
    }, 60_000, 'the database serving again');
    assert.equal(rows[0], 1);
    await db.transaction(async (tx) => { await tx.query('INSERT INTO item (id) VALUES ($1)', [3]); });
    assert.ok(await db.fsyncs() > 0, 'the new worker syncs its commits');
    assert.deepEqual((await db.query<{ id: number }>('SELECT id FROM item WHERE id <> 2 ORDER BY id')).rows, [{ id: 1 }, { id: 3 }]);
  });
});
