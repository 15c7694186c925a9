// The embedded PGlite in a worker thread (pglite-thread.ts is the main thread's side): its
// PostgreSQL runs as WebAssembly on this thread's stack, so a long batch of SQL no longer holds up
// device traffic on the main event loop. A statement has reached the file system when its answer
// is sent, and a COMMIT has been synced to disk (pglite-durability.ts).
import v8 from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { releaseHeap } from '../heap-release.js';
import { syncFileSystem, syncTree } from './pglite-durability.js';
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
/**
 * Scalars leave this thread as PostgreSQL's text; the main thread parses them with its caller's
 * parsers. Arrays, which have no entry here, are parsed here by PGlite's parsers for array types.
 */
const RAW = Object.fromEntries(Object.keys(types.parsers).map((oid) => [oid, (text: string) => text]));

/** A transaction a caller opened ('begin'), held open until its 'end'. */
interface OpenTransaction { chain: Promise<unknown>; end: () => void; settled: Promise<unknown>; rolledBack: boolean }
const transactions = new Map<number, OpenTransaction>();
let nextTx = 1;

const dir = (workerData as { dir: string }).dir;
const template = firstStartTemplate(dir);
const db = await PGlite.create(dir, { startParams: PGLITE_START_PARAMS, ...template });
const fileSync = syncFileSystem(db);
// What reached the files before they could be synced reaches the disk now: a first start's
// unpacked template, and PostgreSQL's own start-up writes (its next checkpoint syncs those).
if (template.loadDataDir) syncTree(dir);
await db.exec('CHECKPOINT');

/**
 * Statements run on PostgreSQL's extended protocol in two calls into the WebAssembly: Parse with
 * Describe (the parameters' types, which say how to write each value), then Bind, Describe,
 * Execute and Sync. PGlite's own query() makes a call for each of those six messages and wraps
 * each, which cost several times the SQL itself for the short statements most calls are
 * (bench/pglite-calls.ts; bench/README.md, "Tenth round").
 *
 * The group commit's statements are prepared once (named statements, as pg's `{ name, text }`
 * queries are): planning the attempt upsert or the history insert took 1.3–1.6 ms of WebAssembly
 * each, more than running them for a few rows (bench/prepared-statements.ts; bench/README.md,
 * "Fifth round"). By SQL text; the repository's batch statements are a handful of constants, and
 * past the cap the others run unnamed. Those whose best plan depends on a table's size run
 * unnamed by choice (BatchSql's `planEachRun`): a kept plan is the one made for the tables of
 * their first runs. Everything else (Prisma's queries) runs unnamed, planned at each run, as
 * PGlite's query() ran it.
 */
const MAX_PREPARED = 64;
const prepared = new Map<string, Described>();
let preparedCount = 0;
/** SQLSTATE invalid_sql_statement_name: the statement is gone (a DEALLOCATE, a new session). */
const STATEMENT_GONE = '26000';

interface Described { name: string; paramTypes: number[] }
type Messages = Awaited<ReturnType<typeof db.execProtocolStream>>;

/** One call into PostgreSQL with these protocol messages; a database error is thrown once all of them ran. */
function send(...messages: Uint8Array[]): Promise<Messages> {
  let message = messages[0]!;
  if (messages.length > 1) {
    message = new Uint8Array(messages.reduce((n, m) => n + m.length, 0));
    let at = 0;
    for (const m of messages) { message.set(m, at); at += m.length; }
  }
  return db.execProtocolStream(message, { syncToFs: false });
}

/**
 * As PGlite's own query(): one statement at a time (the query lock), and outside a transaction
 * also not within one (the transaction lock); the file system is synced after a statement
 * outside a transaction, and after COMMIT within one.
 */
function exclusive<T>(inTransaction: boolean, work: () => Promise<T>): Promise<T> {
  const run = () => db._runExclusiveQuery(async () => {
    const result = await work();
    if (!inTransaction) await db.syncToFs();
    return result;
  });
  return inTransaction ? run() : db._runExclusiveTransaction(run);
}

/** `prepare`: keep it as a named statement (up to MAX_PREPARED), else unnamed, planned at this run. */
async function statement(sql: string, params: unknown[], inTransaction: boolean, prepare: boolean): Promise<WireResult> {
  const run = () => exclusive(inTransaction, async () => {
    let described = prepare ? prepared.get(sql) : undefined;
    let synced = false;
    const results: Messages = [];
    try {
      if (!described) {
        const name = prepare && prepared.size < MAX_PREPARED ? `mqota_${++preparedCount}` : '';
        const answer = await send(protocol.serialize.parse({ name, text: sql }), protocol.serialize.describe({ type: 'S', name }));
        described = { name, paramTypes: wireParse.parseDescribeStatementResults(answer) };
        if (name) prepared.set(sql, described);
      }
      const { name, paramTypes } = described;
      const values = params.map((p, i) => (p === null || p === undefined ? null : (db.serializers[paramTypes[i]!] ?? String)(p) as string));
      // The Sync goes in the same call: after an error the server skips to it, which ends the statement.
      synced = true;
      results.push(...await send(protocol.serialize.bind({ statement: name, values }), protocol.serialize.describe({ type: 'P' }),
        protocol.serialize.execute({}), protocol.serialize.sync()));
    } finally {
      if (!synced) await send(protocol.serialize.sync());
    }
    return wire(wireParse.parseResults(results, db.parsers, { rowMode: 'array', parsers: RAW })[0]!);
  });
  try {
    return await run();
  } catch (err) {
    if ((err as { code?: string }).code !== STATEMENT_GONE || !prepared.has(sql)) throw err;
    // Prepared again on the next call. A transaction is aborted by the error: its caller retries it.
    prepared.delete(sql);
    if (inTransaction) throw err;
    return run();
  }
}

/** SQL on the simple protocol (several statements allowed), a result each. */
function simple(sql: string, inTransaction: boolean): Promise<WireResult[]> {
  return exclusive(inTransaction, async () => wireParse.parseResults(await send(protocol.serialize.query(sql)), db.parsers, { rowMode: 'array', parsers: RAW }).map(wire));
}

/** Opens a transaction and holds PGlite's transaction lock until its 'end'. */
function begin(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const id = nextTx++;
    let end!: () => void;
    const ended = new Promise<void>((r) => { end = r; });
    const open: OpenTransaction = { chain: Promise.resolve(), end, settled: Promise.resolve(), rolledBack: false };
    let begun = false;
    open.settled = db._runExclusiveTransaction(async () => {
      await simple('BEGIN', true); // true: the transaction lock is already held, here
      begun = true;
      transactions.set(id, open);
      resolve(id);
      await ended;
      // A COMMIT after a failed statement rolls back (PostgreSQL answers ROLLBACK); a failed COMMIT
      // is the caller's error.
      if (!open.rolledBack) {
        await simple('COMMIT', true);
        await db.syncToFs();
      }
    }).finally(() => transactions.delete(id));
    open.settled.catch((err: unknown) => { if (!begun) reject(err); });
  });
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

/** Whether a statement runs in a caller's transaction (one that is not open is an error). */
function inTransaction(id: number | undefined): boolean {
  if (!id) return false;
  if (!transactions.has(id)) throw new Error(`transaction ${id} is not open`);
  return true;
}

async function handle(req: ThreadRequest): Promise<unknown> {
  switch (req.op) {
    case 'query':
      return statement(req.sql, req.params ?? [], inTransaction(req.tx), false);
    case 'prepared':
      return statement(req.sql, req.params, inTransaction(req.tx), true);
    case 'exec':
      return simple(req.sql, inTransaction(req.tx));
    case 'begin':
      return begin();
    case 'rollback': {
      const open = transactions.get(req.tx);
      if (open && !open.rolledBack) {
        open.rolledBack = true;
        await simple('ROLLBACK', true);
      }
      return null;
    }
    case 'end': {
      const open = transactions.get(req.tx);
      if (!open) return null;
      open.end();
      await open.settled;
      return null;
    }
    case 'release-heap':
      return releaseHeap();
    case 'fsyncs':
      return fileSync.count();
    case 'fail-fsyncs':
      fileSync.fail();
      return null;
    case 'close':
      await db.close();
      return null;
  }
}

/**
 * After a PANIC (a WAL write or an fsync that failed) or a FATAL, PostgreSQL's session is gone, and
 * PGlite would wait forever on the next call. Every request fails at once with why, nothing more
 * is committed or acknowledged, and the worker exits: the main thread starts another on the same
 * data, which recovers from the WAL (pglite-thread.ts).
 */
let stopped: Error | null = null;
function stopAfter(err: unknown): void {
  const severity = (err as { severity?: string }).severity;
  if (stopped || (severity !== 'PANIC' && severity !== 'FATAL')) return;
  stopped = new Error(`${severity}: ${(err as Error).message}`);
  // After the answers already due (this request's error among them) have been posted; the main
  // thread is told why first (message -1).
  setImmediate(() => {
    port.postMessage({ id: -1, ok: false, error: wireError(stopped) } satisfies ThreadResponse);
    process.exit(1);
  });
}

port.on('message', (req: ThreadRequest) => {
  // A transaction's statements run in the order they were sent.
  const open = 'tx' in req && req.tx ? transactions.get(req.tx) : undefined;
  const attempt = (): Promise<unknown> => {
    if (stopped) return req.op === 'close' ? Promise.resolve(null) : Promise.reject(stopped);
    return handle(req).catch((err: unknown) => { stopAfter(err); throw err; });
  };
  const run = () => attempt().then(
    (result) => port.postMessage({ id: req.id, ok: true, result } satisfies ThreadResponse),
    (err: unknown) => port.postMessage({ id: req.id, ok: false, error: wireError(err) } satisfies ThreadResponse),
  );
  if (open) open.chain = open.chain.then(run);
  else void run();
});
port.postMessage({ id: 0, ok: true, result: 'ready' } satisfies ThreadResponse);
