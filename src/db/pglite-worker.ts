// The embedded PGlite in a worker thread (pglite-thread.ts is the main thread's side): its
// PostgreSQL runs as WebAssembly on this thread's stack, so a long batch of SQL no longer holds up
// device traffic on the main event loop. Same data folder, same settings, same synchronous file
// writes as in-process: a statement has reached the file system when its answer is sent.
import v8 from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import type { Transaction } from '@electric-sql/pglite';
import { releaseHeap } from '../heap-release.js';
import { firstStartTemplate, PGLITE_START_PARAMS } from './pglite-settings.js';
import type { ThreadRequest, ThreadResponse, WireError, WireResult } from './pglite-thread.js';

// PostgreSQL's 8.7 MB of WebAssembly compiled by Liftoff only, never tiered up to TurboFan: the
// process idles ~50 MiB lower after a restart (bench/README.md, "Start-up and memory"); SQL runs
// ~10 % slower, off the main thread. `npm start` and the container give node the flag on its command
// line (START_NODE_ARGS in src/heap-tuning.ts), since Node 24 ignores it set here; this covers a
// process started otherwise on Node 20, where it is set before PGlite's module is compiled and
// Prisma's query compiler (compiled later on the main thread) gets it too. V8's flags are the
// process's, not the thread's: only the process's first worker sets it (pglite-thread.ts), so a
// worker started while an earlier one is torn down (a restart in-process) leaves them alone.
if ((workerData as { setLiftoffOnly: boolean }).setLiftoffOnly) v8.setFlagsFromString('--liftoff-only');
const { PGlite, types, protocol, parse: wireParse } = await import('@electric-sql/pglite');

const port = parentPort!;
/** Values leave this thread as PostgreSQL's text; the main thread parses them with its caller's parsers. */
const RAW = Object.fromEntries(Object.keys(types.parsers).map((oid) => [oid, (text: string) => text]));

interface OpenTransaction { tx: Transaction; chain: Promise<unknown>; end: () => void; settled: Promise<unknown> }
const transactions = new Map<number, OpenTransaction>();
let nextTx = 1;

const dir = (workerData as { dir: string }).dir;
const db = await PGlite.create(dir, { startParams: PGLITE_START_PARAMS, ...firstStartTemplate(dir) });

/**
 * The group commit's statements, prepared once (named statements of the wire protocol, as pg's
 * `{ name, text }` queries are): PGlite's query() parses and plans its statement again on every
 * call, and planning the attempt upsert or the history insert took 1.3–1.6 ms of WebAssembly each,
 * more than running them for a few rows (bench/prepared-statements.ts; bench/README.md, "Fifth round"). By SQL text;
 * the repository's batch statements are a handful of constants, and past the cap the others run
 * unnamed, as before. Those whose best plan depends on a table's size run unnamed by choice
 * (BatchSql's `planEachRun`): a kept plan is the one made for the tables of their first runs.
 */
const MAX_PREPARED = 64;
const prepared = new Map<string, { name: string; paramTypes: number[] }>();
let preparedCount = 0;
/** SQLSTATE invalid_sql_statement_name: the statement is gone (a DEALLOCATE, a new session). */
const STATEMENT_GONE = '26000';

type Messages = Awaited<ReturnType<typeof db.execProtocolStream>>;

/** `tx`: the open transaction the statement belongs to, if any. */
async function queryPrepared(sql: string, params: unknown[], tx: Transaction | undefined): Promise<WireResult> {
  const inTransaction = tx !== undefined;
  let entry = prepared.get(sql);
  if (!entry && prepared.size >= MAX_PREPARED) return wire(await (tx ?? db).query(sql, params, { rowMode: 'array', parsers: RAW }));
  // As PGlite's own query(): one statement at a time (the query lock), and outside a transaction
  // also not within one (the transaction lock); the file system is synced after a statement
  // outside a transaction, and by COMMIT within one.
  const run = () => db._runExclusiveQuery(async () => {
    const send = (message: Uint8Array) => db.execProtocolStream(message, { syncToFs: false });
    const results: Messages = [];
    try {
      if (!entry) {
        const name = `mqota_${++preparedCount}`;
        await send(protocol.serialize.parse({ name, text: sql }));
        entry = { name, paramTypes: wireParse.parseDescribeStatementResults(await send(protocol.serialize.describe({ type: 'S', name }))) };
        prepared.set(sql, entry);
      }
      const { name, paramTypes } = entry;
      const values = params.map((p, i) => (p === null || p === undefined ? null : (db.serializers[paramTypes[i]!] ?? String)(p) as string));
      results.push(...await send(protocol.serialize.bind({ statement: name, values })));
      results.push(...await send(protocol.serialize.describe({ type: 'P' })));
      results.push(...await send(protocol.serialize.execute({})));
    } finally {
      // After an error the server skips everything up to the Sync; it ends the statement either way.
      results.push(...await send(protocol.serialize.sync()));
    }
    if (!inTransaction) await db.syncToFs();
    return wire(wireParse.parseResults(results, RAW, { rowMode: 'array', parsers: RAW })[0]!);
  });
  try {
    return await (inTransaction ? run() : db._runExclusiveTransaction(run));
  } catch (err) {
    if ((err as { code?: string }).code !== STATEMENT_GONE) throw err;
    // Prepared again on the next call. A transaction is aborted by the error: its caller retries it.
    prepared.delete(sql);
    entry = undefined;
    if (inTransaction) throw err;
    return db._runExclusiveTransaction(run);
  }
}

function wire(r: { fields: { name: string; dataTypeID: number }[]; rows: unknown[]; affectedRows?: number }): WireResult {
  return { fields: r.fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID })), rows: r.rows as (string | null)[][], affectedRows: r.affectedRows };
}

function wireError(err: unknown): WireError {
  const e = err as Error & Record<string, unknown>;
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) if (v === null || ['string', 'number', 'boolean', 'undefined'].includes(typeof v)) fields[k] = v;
  return { message: e?.message ?? String(err), database: e instanceof Error && e.constructor?.name === 'DatabaseError', fields };
}

/** The transaction a statement names (none: it runs on its own); one that is not open is an error. */
function openTransaction(id: number | undefined): Transaction | undefined {
  if (!id) return undefined;
  const open = transactions.get(id);
  if (!open) throw new Error(`transaction ${id} is not open`);
  return open.tx;
}

async function handle(req: ThreadRequest): Promise<unknown> {
  switch (req.op) {
    case 'query':
      return wire(await (openTransaction(req.tx) ?? db).query(req.sql, req.params, { rowMode: 'array', parsers: RAW }));
    case 'prepared':
      return queryPrepared(req.sql, req.params, openTransaction(req.tx));
    case 'exec':
      return (await (openTransaction(req.tx) ?? db).exec(req.sql, { rowMode: 'array', parsers: RAW })).map(wire);
    case 'begin':
      return new Promise<number>((resolve, reject) => {
        const id = nextTx++;
        let end!: () => void;
        const ended = new Promise<void>((r) => { end = r; });
        let opened = false;
        const settled = db.transaction(async (tx) => {
          opened = true;
          transactions.set(id, { tx, chain: Promise.resolve(), end, settled });
          resolve(id);
          await ended;
        }).finally(() => transactions.delete(id));
        settled.catch((err: unknown) => { if (!opened) reject(err); });
      });
    case 'rollback': {
      const open = transactions.get(req.tx);
      if (open) await open.tx.rollback();
      return null;
    }
    case 'end': {
      // The callback returns; PGlite commits (unless rolled back); a failed COMMIT is the caller's error.
      const open = transactions.get(req.tx);
      if (!open) return null;
      open.end();
      await open.settled;
      return null;
    }
    case 'release-heap':
      return releaseHeap();
    case 'close':
      await db.close();
      return null;
  }
}

port.on('message', (req: ThreadRequest) => {
  // A transaction's statements run in the order they were sent.
  const open = 'tx' in req && req.tx ? transactions.get(req.tx) : undefined;
  const run = () => handle(req).then(
    (result) => port.postMessage({ id: req.id, ok: true, result } satisfies ThreadResponse),
    (err: unknown) => port.postMessage({ id: req.id, ok: false, error: wireError(err) } satisfies ThreadResponse),
  );
  if (open) open.chain = open.chain.then(run);
  else void run();
});
port.postMessage({ id: 0, ok: true, result: 'ready' } satisfies ThreadResponse);
