// The embedded PGlite in a worker thread (pglite-thread.ts is the main thread's side): its
// PostgreSQL runs as WebAssembly on this thread's stack, so a long batch of SQL no longer holds up
// device traffic on the main event loop. Same data folder, same settings, same synchronous file
// writes as in-process: a statement has reached the file system when its answer is sent.
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite, types, type Transaction } from '@electric-sql/pglite';
import { firstStartTemplate, PGLITE_START_PARAMS } from './pglite-settings.js';
import type { ThreadRequest, ThreadResponse, WireError, WireResult } from './pglite-thread.js';

const port = parentPort!;
/** Values leave this thread as PostgreSQL's text; the main thread parses them with its caller's parsers. */
const RAW = Object.fromEntries(Object.keys(types.parsers).map((oid) => [oid, (text: string) => text]));

interface OpenTransaction { tx: Transaction; chain: Promise<unknown>; end: () => void; settled: Promise<unknown> }
const transactions = new Map<number, OpenTransaction>();
let nextTx = 1;

const dir = (workerData as { dir: string }).dir;
const db = await PGlite.create(dir, { startParams: PGLITE_START_PARAMS, ...firstStartTemplate(dir) });

function wire(r: { fields: { name: string; dataTypeID: number }[]; rows: unknown[]; affectedRows?: number }): WireResult {
  return { fields: r.fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID })), rows: r.rows as (string | null)[][], affectedRows: r.affectedRows };
}

function wireError(err: unknown): WireError {
  const e = err as Error & Record<string, unknown>;
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) if (v === null || ['string', 'number', 'boolean', 'undefined'].includes(typeof v)) fields[k] = v;
  return { message: e?.message ?? String(err), database: e instanceof Error && e.constructor?.name === 'DatabaseError', fields };
}

async function handle(req: ThreadRequest): Promise<unknown> {
  switch (req.op) {
    case 'query': {
      const target = req.tx ? transactions.get(req.tx)?.tx : db;
      if (!target) throw new Error(`transaction ${req.tx} is not open`);
      return wire(await target.query(req.sql, req.params, { rowMode: 'array', parsers: RAW }));
    }
    case 'exec': {
      const target = req.tx ? transactions.get(req.tx)?.tx : db;
      if (!target) throw new Error(`transaction ${req.tx} is not open`);
      return (await target.exec(req.sql, { rowMode: 'array', parsers: RAW })).map(wire);
    }
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
