// The main thread's side of the PGlite worker (pglite-worker.ts): an object with the PGlite
// methods mqota and pglite-prisma-adapter call (query, exec, transaction with query/exec/rollback,
// close), each a message to the worker. Results come back as PostgreSQL's text and are parsed here
// with the caller's parsers, as PGlite would; database errors come back as PGlite's DatabaseError,
// so the adapter maps them to Prisma's errors as before.
import { Worker } from 'node:worker_threads';
import type { HeapReleased } from '../heap-release.js';
import { messages, types, type PGlite, type QueryOptions, type Results, type Transaction } from '@electric-sql/pglite';

export interface WireResult { fields: { name: string; dataTypeID: number }[]; rows: (string | null)[][]; affectedRows?: number }
export interface WireError { message: string; database: boolean; fields: Record<string, unknown> }
export type ThreadRequest =
  | { id: number; op: 'query'; sql: string; params?: unknown[]; tx?: number }
  /** As query, as a named statement prepared on first use (pglite-worker.ts, queryPrepared). */
  | { id: number; op: 'prepared'; sql: string; params: unknown[]; tx?: number }
  | { id: number; op: 'exec'; sql: string; tx?: number }
  | { id: number; op: 'begin' }
  | { id: number; op: 'rollback'; tx: number }
  | { id: number; op: 'end'; tx: number }
  | { id: number; op: 'release-heap' }
  | { id: number; op: 'fsyncs' }
  | { id: number; op: 'fail-fsyncs' }
  | { id: number; op: 'close' };
export type ThreadResponse = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: WireError };

type Request = ThreadRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/** A statement run as a named, prepared statement: parsed and planned once (pglite-worker.ts). */
export interface PreparedQueries {
  queryPrepared<T>(sql: string, params: unknown[], options?: QueryOptions): Promise<Results<T>>;
}

/** The subset of PGlite mqota uses, answered by a worker thread; transactions' objects prepare too. */
export type PGliteThread = Pick<PGlite, 'query' | 'exec' | 'close'> & PreparedQueries & {
  transaction<T>(callback: (tx: Transaction & PreparedQueries) => Promise<T>): Promise<T>;
  /** One memory-reducing collection in the worker (heap-release.ts). */
  releaseHeap(): Promise<HeapReleased>;
  /** How many times PostgreSQL's writes have been synced to disk so far, by this worker (pglite-durability.ts). */
  fsyncs(): Promise<number>;
  /** Fault injection, for tests only: from now on this worker's fsyncs fail, as a failing disk's would. */
  failFsyncs(): Promise<void>;
};

/** Whether V8's --liftoff-only is set in this process: on node's command line, or by a first worker (pglite-worker.ts). */
let liftoffOnly = process.execArgv.includes('--liftoff-only');

export async function openPgliteThread(dir: string): Promise<PGliteThread> {
  // Compiled, the worker is a .js file next to this one; from the sources it is a .ts file, and
  // the worker registers tsx's loader first (a worker does not inherit the main thread's loader).
  const script = new URL(`./pglite-worker.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url);
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  /** Why calls fail now: the worker is gone and not yet replaced. */
  let failure: Error | null = null;
  let closing = false;
  let replacing: Promise<void> | null = null;
  /** A replacement worker being started (not the wait between two tries). */
  let starting: Promise<Worker> | null = null;

  const rejectPending = (err: Error) => {
    for (const w of pending.values()) w.reject(err);
    pending.clear();
  };
  /** A worker, resolved once its PGlite is open (its message 0). */
  const start = () => new Promise<Worker>((resolve, reject) => {
    const workerData = { dir, setLiftoffOnly: !liftoffOnly };
    liftoffOnly = true;
    // Named: Node 24 gives the thread that name, which `top -H` and the bench show (Node 20 and 22 do not).
    const w = script.pathname.endsWith('.js')
      ? new Worker(script, { workerData, name: 'pglite' })
      : new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(script.href)}); });`, { eval: true, workerData, name: 'pglite' });
    let up = false;
    /** Why the worker is about to exit (its message -1), if it said. */
    let why: string | null = null;
    w.on('message', (m: ThreadResponse) => {
      if (m.id === 0) { up = true; resolve(w); return; }
      if (m.id === -1 && !m.ok) { why = m.error.message; return; }
      const waiter = pending.get(m.id);
      if (!waiter) return;
      pending.delete(m.id);
      if (m.ok) waiter.resolve(m.result);
      else waiter.reject(toError(m.error));
    });
    const gone = (err: Error) => (up ? lost(w, why ? new Error(why) : err) : reject(err));
    w.on('error', gone);
    w.on('exit', (code) => gone(new Error(`the PGlite worker exited (${code})`)));
  });
  /**
   * The worker is gone: after PostgreSQL's PANIC it exits by itself (pglite-worker.ts). A new one
   * opens the same data folder, and PostgreSQL recovers from its WAL, as its postmaster restarts
   * after a crash. Meanwhile calls fail at once with the cause, and the group commit retries.
   */
  const lost = (w: Worker, err: Error) => {
    if (w !== worker) return;
    failure = closing ? err : new Error(`the embedded PostgreSQL stopped (${err.message}); starting it again`);
    rejectPending(failure);
    if (!closing) replacing ??= replace().finally(() => { replacing = null; });
  };
  const replace = async () => {
    for (let delay = 1_000; !closing; delay = Math.min(delay * 2, 30_000)) {
      try {
        const next = await (starting = start()).finally(() => { starting = null; });
        if (closing) { await next.terminate(); return; }
        worker = next;
        failure = null;
        return;
      } catch (err) {
        failure = new Error(`the embedded PostgreSQL could not be started again: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, delay).unref()); // close() does not wait for it
      }
    }
  };
  const call = <T>(req: Request): Promise<T> => {
    if (failure) return Promise.reject(failure);
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ ...req, id });
    });
  };
  let worker: Worker = await start();

  const query = async <T>(sql: string, params?: unknown[], options?: QueryOptions, tx?: number): Promise<Results<T>> =>
    parse<T>(await call<WireResult>({ op: 'query', sql, params, tx }), options);
  const queryPrepared = async <T>(sql: string, params: unknown[], options?: QueryOptions, tx?: number): Promise<Results<T>> =>
    parse<T>(await call<WireResult>({ op: 'prepared', sql, params, tx }), options);
  const exec = async (sql: string, options?: QueryOptions, tx?: number): Promise<Results[]> =>
    (await call<WireResult[]>({ op: 'exec', sql, tx })).map((r) => parse(r, options));

  return {
    query: (sql, params, options) => query(sql, params, options),
    queryPrepared: (sql, params, options) => queryPrepared(sql, params, options),
    exec: (sql, options) => exec(sql, options),
    async transaction<T>(callback: (tx: Transaction & PreparedQueries) => Promise<T>): Promise<T> {
      const id = await call<number>({ op: 'begin' });
      let closed = false;
      const tx = {
        query: <R>(sql: string, params?: unknown[], options?: QueryOptions) => query<R>(sql, params, options, id),
        queryPrepared: <R>(sql: string, params: unknown[], options?: QueryOptions) => queryPrepared<R>(sql, params, options, id),
        exec: (sql: string, options?: QueryOptions) => exec(sql, options, id),
        rollback: async () => { closed = true; await call({ op: 'rollback', tx: id }); },
        get closed() { return closed; },
      } as unknown as Transaction & PreparedQueries;
      let result: T;
      try {
        result = await callback(tx);
      } catch (err) {
        if (!closed) await call({ op: 'rollback', tx: id }).catch(() => undefined);
        await call({ op: 'end', tx: id }).catch(() => undefined);
        throw err;
      }
      await call({ op: 'end', tx: id });
      return result;
    },
    releaseHeap: () => call<HeapReleased>({ op: 'release-heap' }),
    fsyncs: () => call<number>({ op: 'fsyncs' }),
    failFsyncs: () => call<null>({ op: 'fail-fsyncs' }).then(() => undefined),
    async close() {
      closing = true;
      if (!failure) await call({ op: 'close' });
      // A replacement under way would open the folder after its lock is released: it ends first.
      await starting?.catch(() => undefined);
      await worker.terminate();
    },
  } as PGliteThread;
}

function parse<T>(r: WireResult, options?: QueryOptions): Results<T> {
  const parsers = options?.parsers;
  const rows = r.rows.map((row) => row.map((text, i) => (text === null ? null : types.parseType(text, r.fields[i].dataTypeID, parsers))));
  const shaped = options?.rowMode === 'array' ? rows : rows.map((row) => Object.fromEntries(row.map((v, i) => [r.fields[i].name, v])));
  return { rows: shaped as T[], fields: r.fields, affectedRows: r.affectedRows };
}

function toError(e: WireError): Error {
  if (!e.database) return Object.assign(new Error(e.message), e.fields);
  return Object.assign(new messages.DatabaseError(e.message, 0, 'error'), e.fields);
}
