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

interface NodeFsStream { nfd?: number }
interface EmscriptenFs {
  filesystems: { NODEFS?: { stream_ops: { fsync?: (stream: NodeFsStream) => number }; tryFSOperation<T>(f: () => T): T } };
}

/** Gives PGlite's NODEFS an fsync; returns how many it has made so far. */
export function syncFileSystem(db: PGlite): () => number {
  const nodefs = (db as unknown as { Module: { FS: EmscriptenFs } }).Module.FS.filesystems.NODEFS;
  if (!nodefs) throw new Error('PGlite has no NODEFS file system: its commits could not be made durable');
  let syncs = 0;
  nodefs.stream_ops.fsync = (stream) => {
    // A directory's stream has no file descriptor of its own; its entries are synced by syncTree.
    if (stream.nfd === undefined) return 0;
    nodefs.tryFSOperation(() => fsyncSync(stream.nfd!)); // an error becomes PostgreSQL's (a PANIC, as on PostgreSQL)
    syncs++;
    return 0;
  };
  return () => syncs;
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
