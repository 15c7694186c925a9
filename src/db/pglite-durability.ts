// A COMMIT on the embedded PGlite reaches the disk, as one on PostgreSQL does. PGlite's file layer
// (Emscripten's NODEFS) writes through to the data folder, so a commit survives a killed process,
// but it has no fsync: PostgreSQL's fdatasync() is a no-op and its fsync() does nothing on NODEFS's
// files. A power loss could then lose acknowledged commits, or leave data pages and WAL that do
// not agree. mqota gives NODEFS an fsync and starts PostgreSQL with fsync on and
// wal_sync_method=fsync (pglite-settings.ts): each COMMIT syncs the WAL, each checkpoint the data
// files, as PostgreSQL's own durability rules say. Runs on PGlite's worker thread.
import { closeSync, fsyncSync, openSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';

interface NodeFsStream { nfd?: number; node: unknown }
/** Emscripten's errno for EIO. */
const EIO = 29;

interface EmscriptenFs {
  ErrnoError: new (errno: number) => Error;
  filesystems: {
    NODEFS?: { stream_ops: { fsync?: (stream: NodeFsStream) => number }; tryFSOperation<T>(f: () => T): T; realPath(node: unknown): string };
  };
}

export interface FileSync {
  /** How many fsyncs so far. */
  count(): number;
  /** Fault injection, for tests only: from now on each fsync fails, as a failing disk's would (EIO). */
  fail(): void;
}

/** Gives PGlite's NODEFS an fsync. */
export function syncFileSystem(db: PGlite): FileSync {
  const fs = (db as unknown as { Module: { FS: EmscriptenFs } }).Module.FS;
  const nodefs = fs.filesystems.NODEFS;
  if (!nodefs) throw new Error('PGlite has no NODEFS file system: its commits could not be made durable');
  let syncs = 0;
  let failing = false;
  nodefs.stream_ops.fsync = (stream) => {
    if (failing) throw new fs.ErrnoError(EIO);
    // An error becomes PostgreSQL's, which PANICs (pglite-worker.ts). NODEFS opens no descriptor for
    // a directory, which PostgreSQL syncs after creating or renaming a file in it: opened here.
    nodefs.tryFSOperation(() => (stream.nfd === undefined ? syncPath(nodefs.realPath(stream.node)) : fsyncSync(stream.nfd)));
    syncs++;
    return 0;
  };
  return { count: () => syncs, fail: () => { failing = true; } };
}

/**
 * Syncs every file and folder under `dir`: a first start unpacks the template cluster
 * (pglite-settings.ts) through NODEFS, and PostgreSQL never asks for those files to be synced.
 */
export function syncTree(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) syncTree(full);
    else if (entry.isFile()) syncPath(full);
  }
  syncPath(dir);
}

function syncPath(file: string): void {
  const fd = openSync(file, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
