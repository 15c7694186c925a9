// The write-behind queue against real databases (PGlite and PostgreSQL): writes land, a burst
// shares one commit once the floor between commits is reached, rows coalesce to their latest
// state, and a batch of several statements is one transaction (all or nothing).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { openDatabase, type Database } from '../src/db/database.js';
import { WriteBehind, type AttemptRow, type DeviceRow } from '../src/db/write-behind.js';
import { freshPostgresDatabase } from './support/postgres.js';

const log = pino({ level: 'silent' });

function device(id: string, version: string): DeviceRow {
  return { id, type: 'lamp', version, chip: 'esp32', idfVersion: null, secureVersion: null, slot: null, online: true, lastSeenAt: new Date() };
}

for (const kind of ['pglite', 'postgres'] as const) {
  describe(`write-behind on ${kind}`, () => {
    let db: Database;
    let dataDir: string;
    const opened = (async () => {
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'mqota-wb-'));
      db = await openDatabase({ databaseUrl: kind === 'postgres' ? await freshPostgresDatabase() : null, dataDir, logger: log });
    })();

    after(async () => {
      await db?.close();
      await rm(dataDir, { recursive: true, force: true });
    });

    const versionOf = async (id: string) => (await db.prisma.device.findUnique({ where: { id } }))?.version ?? null;

    test('a write lands at once; a burst after it waits for the floor and shares one commit, latest state only', async () => {
      await opened;
      const writes = new WriteBehind(db.prisma, log, 300);
      await writes.device(device('wb-first', '1.0.0'));
      assert.equal(writes.commits, 1);
      assert.equal(await versionOf('wb-first'), '1.0.0');

      // Within the 300 ms floor of the first commit: these gather into the next batch.
      const burst: Promise<void>[] = [];
      for (let i = 0; i < 5; i++) {
        burst.push(writes.device(device(`wb-burst-${i}`, '1.0.0')));
        await sleep(5);
      }
      burst.push(writes.device(device('wb-burst-0', '1.0.1'))); // coalesced: the batch holds the latest row
      await Promise.all(burst);
      assert.equal(writes.commits, 2);
      assert.equal(await versionOf('wb-burst-0'), '1.0.1');
      for (let i = 1; i < 5; i++) assert.equal(await versionOf(`wb-burst-${i}`), '1.0.0');
      await writes.close();
    });

    test('flush() does not wait for the floor: a caller that needs the rows gets them now', async () => {
      await opened;
      const writes = new WriteBehind(db.prisma, log, 60_000);
      await writes.device(device('wb-flush-1', '1.0.0'));
      const queued = writes.device(device('wb-flush-2', '1.0.0')); // inside the minute-long floor
      const flushed = await Promise.race([writes.flush().then(() => 'flushed'), sleep(10_000).then(() => 'waited for the floor')]);
      assert.equal(flushed, 'flushed');
      await queued;
      assert.equal(writes.commits, 2);
      assert.equal(await versionOf('wb-flush-2'), '1.0.0');
      await writes.close();
    });

    test('several statements are one transaction: a failing attempt row takes the device row with it', async () => {
      await opened;
      const writes = new WriteBehind(db.prisma, log, 0);
      const now = new Date();
      const orphan: AttemptRow = {
        id: 'wb-orphan', rolloutId: 'no-such-rollout', deviceId: 'wb-tx', firmwareId: 'no-such-firmware', fromVersion: null, retry: 0,
        state: 'pending', progress: null, error: null, reason: null, createdAt: now, updatedAt: now, finishedAt: null,
      };
      const both = [writes.device(device('wb-tx', '2.0.0')), writes.attempt(orphan)];
      // The foreign keys refuse the attempt on every retry; the batch is given up and reported.
      const results = await Promise.allSettled(both);
      assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
      assert.equal(await versionOf('wb-tx'), null);
      assert.equal(await db.prisma.updateAttempt.count({ where: { id: 'wb-orphan' } }), 0);
      assert.equal(writes.commits, 0);

      // The queue carries on after a failed batch.
      await writes.device(device('wb-tx', '2.0.1'));
      assert.equal(await versionOf('wb-tx'), '2.0.1');
      await writes.close();
    });
  });
}
