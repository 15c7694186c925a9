// The generated Prisma client compiles its query compiler's WebAssembly from a 4.5 MB base64 string.
// scripts/prisma-generate.mjs makes it read that string from the file as text, so neither the
// string nor a module holding it stays in the main thread's heap once the WebAssembly is compiled:
// imported as Prisma generates it, ~9 MiB stayed there for the life of the process (on Node 24
// even when loaded through require and dropped from its cache). A fresh process opens the
// embedded database, runs a model query (which needs the compiler) and writes a heap snapshot,
// which the test searches for that string (WebAssembly's magic number, base64: "AGFzbQ"). It runs
// through tsx, whose loader lets a required module's source go either way: so this guards that the
// generated client is patched at all (a Prisma upgrade can change what the patch looks for), not
// the Node 24 difference itself (bench/README.md, "Seventh round").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const REPO_ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

const PROBE = `
import v8 from 'node:v8';
import { pino } from 'pino';
import { openDatabase } from './src/db/database.ts';
const db = await openDatabase({ databaseUrl: null, dataDir: process.env.PROBE_DATA_DIR, logger: pino({ level: 'silent' }) });
await db.prisma.device.count();
v8.writeHeapSnapshot(process.env.PROBE_SNAPSHOT);
await db.close();
`;

/** Strings in a V8 heap snapshot of at least `minBytes` whose text starts with `prefix`. */
function largeStrings(snapshot: { snapshot: { meta: { node_fields: string[]; node_types: string[][] } }; nodes: number[]; strings: string[] }, prefix: string, minBytes: number): number[] {
  const fields = snapshot.snapshot.meta.node_fields;
  const [type, name, size] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const found: number[] = [];
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    if (!snapshot.snapshot.meta.node_types[0][snapshot.nodes[i + type]].includes('string')) continue;
    if (snapshot.nodes[i + size] >= minBytes && snapshot.strings[snapshot.nodes[i + name]].startsWith(prefix)) found.push(snapshot.nodes[i + size]);
  }
  return found;
}

test('once the database is open, the main thread holds no copy of the query compiler\'s base64', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mqota-qc-'));
  try {
    const snapshotFile = path.join(dataDir, 'probe.heapsnapshot');
    await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', PROBE], {
      cwd: REPO_ROOT, env: { ...process.env, PROBE_DATA_DIR: path.join(dataDir, 'data'), PROBE_SNAPSHOT: snapshotFile },
    });
    const snapshot = JSON.parse(await readFile(snapshotFile, 'utf8'));
    // The probe is not vacuous: its own heap holds the snapshot's strings of that size (tsx's sources).
    assert.ok(largeStrings(snapshot, '', 256 * 1024).length > 0, 'no large string at all: the search is broken');
    const copies = largeStrings(snapshot, 'AGFzbQ', 1024 * 1024);
    assert.deepEqual(copies, [], `the query compiler's base64 is still in the heap: ${copies.map((b) => `${(b / 1048576).toFixed(1)} MiB`).join(', ')}`);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
