import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseByteRange } from '../src/firmware/byte-range.js';
import { ImageCache } from '../src/firmware/image-cache.js';
import { ImageStore } from '../src/firmware/image-store.js';

let dir: string;
let store: ImageStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mqota-image-cache-'));
  store = new ImageStore(join(dir, 'images'), 1024 * 1024);
  await store.init();
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const save = async (size: number, fill: number) => (await store.save(Readable.from([Buffer.alloc(size, fill)]))).sha256;

test('an image is read once, then served from memory; the least recently used leave first when bytes run out', async () => {
  const cache = new ImageCache(store, 2500);
  const [a, b, c] = [await save(1000, 1), await save(1000, 2), await save(1000, 3)];
  const first = await cache.get(a);
  assert.ok(Buffer.isBuffer(first) && first.length === 1000 && first[0] === 1);
  assert.equal(await cache.get(a), first, 'the same buffer: from memory');
  await cache.get(b);
  await cache.get(a); // a is now the most recently used
  await cache.get(c); // 3,000 bytes > 2,500: b goes
  assert.deepEqual(cache.size, { images: 2, bytes: 2000 });
  assert.equal(await cache.get(a), first);
  const again = await cache.get(b);
  assert.ok(Buffer.isBuffer(again) && again[0] === 2, 'b is read from disk again');
});

test('a hundred requests at once read the file once', async () => {
  const cache = new ImageCache(store, 10_000);
  const a = await save(1000, 4);
  const results = await Promise.all(Array.from({ length: 100 }, () => cache.get(a)));
  assert.ok(results.every((r) => r === results[0] && Buffer.isBuffer(r)));
  assert.deepEqual(cache.size, { images: 1, bytes: 1000 });
});

test('unknown images are null; images larger than the cache are left to the file stream', async () => {
  const cache = new ImageCache(store, 500);
  assert.equal(await cache.get('0'.repeat(64)), null);
  assert.equal(await cache.get(await save(1000, 5)), 'uncached');
  assert.deepEqual(cache.size, { images: 0, bytes: 0 });
});

test('removing an image from the store removes it from memory, also while it is being read', async () => {
  const cache = new ImageCache(store, 10_000);
  const a = await save(1000, 6);
  assert.ok(Buffer.isBuffer(await cache.get(a)));
  await store.remove(a);
  assert.deepEqual(cache.size, { images: 0, bytes: 0 });
  assert.equal(await cache.get(a), null);

  const b = await save(1000, 7);
  const reading = cache.get(b);
  await store.remove(b);
  await reading; // served to whoever asked (or null if the file was already gone), but not kept
  assert.deepEqual(cache.size, { images: 0, bytes: 0 });
  assert.equal(await cache.get(b), null);
});

test('Range headers: one range, suffix, open end, past the end, and what is ignored', () => {
  assert.deepEqual(parseByteRange('bytes=0-9', 100), { start: 0, end: 9 });
  assert.deepEqual(parseByteRange('bytes=90-', 100), { start: 90, end: 99 });
  assert.deepEqual(parseByteRange('bytes=-10', 100), { start: 90, end: 99 });
  assert.deepEqual(parseByteRange('bytes=-1000', 100), { start: 0, end: 99 });
  assert.deepEqual(parseByteRange('bytes=50-1000', 100), { start: 50, end: 99 });
  assert.equal(parseByteRange('bytes=100-', 100), 'unsatisfiable');
  assert.equal(parseByteRange('bytes=-0', 100), 'unsatisfiable');
  for (const ignored of [undefined, '', 'bytes=', 'bytes=-', 'items=0-1', 'bytes=5-1', 'bytes=0-1,4-5', 'bytes=a-b']) {
    assert.equal(parseByteRange(ignored, 100), null, String(ignored));
  }
});
