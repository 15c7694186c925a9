// What one call to the embedded database costs, by kind, on the path mqota uses (PGlite in its
// worker thread, pglite-worker.ts): a Prisma query, a group commit of one statement, and one of two
// statements in a transaction. Each kind runs `--runs` times after a warm-up, alternating rounds;
// printed per call: wall time, the worker thread's CPU and the main thread's, from
// /proc/self/task (so Linux only).
//
//   npx tsx bench/pglite-calls.ts [--runs 2000] [--rounds 2]
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { openDatabase, type BatchStep } from '../src/db/database.js';
import { threadCpuMs } from './machine.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '2' } } });
const runs = Number(values.runs);
const rounds = Number(values.rounds);

const dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-pglite-calls-'));
const db = await openDatabase({ databaseUrl: null, dataDir: dir, logger: pino({ level: 'silent' }) });
try {
  // A device table of a small fleet for the queries to find their rows in.
  await db.prisma.$executeRawUnsafe(`INSERT INTO "Device" (id, type, version, "updatedAt") SELECT 'dev-' || g, 'lamp', '1.0.0', now() FROM generate_series(0, 9999) g`);
  const UPSERT = `INSERT INTO "Device" (id, type, version, online, "lastSeenAt", "updatedAt")
SELECT id, type, version, online, "lastSeenAt", now() FROM json_to_recordset($1::json) AS x(id text, type text, version text, online boolean, "lastSeenAt" timestamp)
ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, online = EXCLUDED.online, "lastSeenAt" = EXCLUDED."lastSeenAt", "updatedAt" = now()`;
  let next = 0;
  const rows = (n: number) => JSON.stringify(Array.from({ length: n }, () => ({ id: `dev-${next++ % 10000}`, type: 'lamp', version: '1.0.1', online: true, lastSeenAt: new Date() })));
  const upsert: BatchStep = async (sql) => { await sql.query(UPSERT, [rows(3)]); };
  const kinds: Record<string, () => Promise<unknown>> = {
    'Prisma findUnique': () => db.prisma.device.findUnique({ where: { id: `dev-${next++ % 10000}` }, select: { id: true, version: true } }),
    'commit, one statement (3 rows)': () => db.batch([upsert]),
    'commit, two statements in a transaction': () => db.batch([upsert, upsert]),
  };

  for (const run of Object.values(kinds)) for (let i = 0; i < 200; i++) await run(); // warm-up
  console.log(`PGlite in its worker thread, ${runs} calls a kind and round, Node ${process.versions.node}`);
  for (let round = 1; round <= rounds; round++) {
    for (const [name, run] of Object.entries(kinds)) {
      const before = threadCpuMs(process.pid);
      const started = performance.now();
      for (let i = 0; i < runs; i++) await run();
      const wall = performance.now() - started;
      const after = threadCpuMs(process.pid);
      let mainMs = 0;
      let busiestOther = 0;
      for (const [tid, ms] of after) {
        const used = ms - (before.get(tid) ?? 0);
        if (tid === process.pid) mainMs = used;
        else busiestOther = Math.max(busiestOther, used); // the PGlite worker: the only busy thread besides the main one
      }
      const us = (ms: number) => `${Math.round((ms * 1000) / runs)} µs`.padStart(8);
      console.log(`  round ${round}  ${name.padEnd(42)} wall ${us(wall)}   worker CPU ${us(busiestOther)}   main CPU ${us(mainMs)}`);
    }
  }
} finally {
  await db.close();
  await rm(dir, { recursive: true, force: true });
}
