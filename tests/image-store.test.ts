import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { ESP_IMAGE_HEADER_BYTES } from '../src/firmware/esp-image.js';
import { EmptyImageError, ImageStore, ImageTooLargeError } from '../src/firmware/image-store.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Yields `bytes` in chunks of `size`, as a network upload would arrive. */
function chunked(bytes: Buffer, size: number): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
    })(),
  );
}

let dir: string;
let store: ImageStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mqota-images-'));
  store = new ImageStore(join(dir, 'images'), 1024 * 1024);
  await store.init();
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const files = () => readdir(join(dir, 'images'));

describe('ImageStore.save', () => {
  test('hash, size, path and head match the bytes, across odd chunk sizes', async () => {
    const image = buildEspAppImage({ projectName: 'thermostat', version: '1.3.0', payloadBytes: 100_000 });
    for (const chunk of [7, 288, 289, 65536]) {
      const saved = await store.save(chunked(image, chunk));
      assert.equal(saved.sha256, sha256(image), `chunk ${chunk}`);
      assert.equal(saved.size, image.length);
      assert.equal(saved.path, join(dir, 'images', `${sha256(image)}.bin`));
      assert.deepEqual(saved.head, image.subarray(0, ESP_IMAGE_HEADER_BYTES));
      assert.deepEqual(await readFile(saved.path), image);
    }
    assert.deepEqual(await files(), [`${sha256(image)}.bin`]);
  });

  test('head is the whole file when it is shorter than the header', async () => {
    const small = Buffer.from('not firmware');
    const saved = await store.save(chunked(small, 3));
    assert.deepEqual(saved.head, small);
    assert.equal(saved.size, small.length);
  });

  test('same bytes twice: one file, the existing one kept', async () => {
    const image = buildEspAppImage({ projectName: 'p', version: '1.0.0' });
    const first = await store.save(chunked(image, 1000));
    const before = await stat(first.path);
    const second = await store.save(chunked(image, 333));
    assert.equal(second.sha256, first.sha256);
    assert.equal(second.path, first.path);
    assert.equal((await stat(second.path)).ino, before.ino);
    assert.deepEqual(await files(), [`${first.sha256}.bin`]);
  });

  test('different images get different files', async () => {
    const a = await store.save(chunked(buildEspAppImage({ projectName: 'p', version: '1.0.0' }), 4096));
    const b = await store.save(chunked(buildEspAppImage({ projectName: 'p', version: '1.0.1' }), 4096));
    assert.notEqual(a.sha256, b.sha256);
    assert.deepEqual((await files()).sort(), [`${a.sha256}.bin`, `${b.sha256}.bin`].sort());
  });

  test('exactly maxBytes is accepted', async () => {
    const limited = new ImageStore(join(dir, 'images'), 1000);
    const saved = await limited.save(chunked(Buffer.alloc(1000, 1), 100));
    assert.equal(saved.size, 1000);
  });

  test('too large: aborts as soon as the limit is passed and leaves nothing', async () => {
    const limited = new ImageStore(join(dir, 'images'), 1000);
    let pulled = 0;
    const endless = Readable.from(
      (function* () {
        for (let i = 0; i < 100_000; i++) {
          pulled++;
          yield Buffer.alloc(100, i & 0xff);
        }
      })(),
    );
    await assert.rejects(limited.save(endless), (err: unknown) => {
      assert.ok(err instanceof ImageTooLargeError);
      assert.equal(err.limit, 1000);
      return true;
    });
    // 11 chunks cross the limit; allow for stream read-ahead, not for reading it all.
    assert.ok(pulled < 100, `read ${pulled} chunks`);
    assert.deepEqual(await files(), []);
  });

  test('empty: EmptyImageError and nothing left', async () => {
    await assert.rejects(store.save(Readable.from([])), EmptyImageError);
    assert.deepEqual(await files(), []);
  });

  test('a source that throws mid-way leaves nothing', async () => {
    const failing = Readable.from(
      (function* () {
        yield Buffer.alloc(5000, 1);
        yield Buffer.alloc(5000, 2);
        throw new Error('disk on fire');
      })(),
    );
    await assert.rejects(store.save(failing), /disk on fire/);
    assert.deepEqual(await files(), []);
  });

  test('a client abort (stream destroyed with an error) leaves nothing', async () => {
    const upload = new PassThrough();
    const saving = store.save(upload);
    upload.write(Buffer.alloc(64 * 1024, 3));
    setImmediate(() => upload.destroy(new Error('aborted')));
    await assert.rejects(saving, /aborted/);
    assert.deepEqual(await files(), []);
  });

  test('a source that fails before its first byte leaves nothing', async () => {
    const upload = new PassThrough();
    const saving = store.save(upload);
    upload.destroy(new Error('reset'));
    await assert.rejects(saving, /reset/);
    assert.deepEqual(await files(), []);
  });

  test('concurrent saves of the same bytes both succeed with one file', async () => {
    const image = buildEspAppImage({ projectName: 'p', version: '1.0.0', payloadBytes: 200_000 });
    const results = await Promise.all([1, 2, 3].map((n) => store.save(chunked(image, 997 * n))));
    for (const r of results) assert.equal(r.sha256, sha256(image));
    assert.deepEqual(await files(), [`${sha256(image)}.bin`]);
    assert.deepEqual(await readFile(results[0].path), image);
  });
});

describe('ImageStore files', () => {
  test('init removes temp files left by a crash, and nothing else', async () => {
    const images = join(dir, 'images');
    const keep = `${'a'.repeat(64)}.bin`;
    await writeFile(join(images, keep), 'x');
    await writeFile(join(images, '.upload-0123abcd.part'), 'partial');
    await writeFile(join(images, 'notes.txt'), 'y');
    await store.init();
    assert.deepEqual((await files()).sort(), [keep, 'notes.txt']);
  });

  test('init creates missing parent directories', async () => {
    const nested = new ImageStore(join(dir, 'a', 'b', 'c'), 10);
    await nested.init();
    assert.deepEqual(await readdir(join(dir, 'a', 'b', 'c')), []);
  });

  test('pathOf accepts only 64 lowercase hex digits', () => {
    const ok = '0123456789abcdef'.repeat(4);
    assert.equal(store.pathOf(ok), join(dir, 'images', `${ok}.bin`));
    for (const bad of ['../x', '', ok.toUpperCase(), ok.slice(1), `${ok}0`, `../${ok.slice(3)}`, `${ok.slice(1)}g`, `${ok}\n`]) {
      assert.throws(() => store.pathOf(bad), RangeError, JSON.stringify(bad));
    }
    assert.throws(() => store.pathOf(undefined as unknown as string), RangeError);
  });

  test('has and remove', async () => {
    const saved = await store.save(Readable.from([Buffer.from('firmware')]));
    assert.equal(await store.has(saved.sha256), true);
    await store.remove(saved.sha256);
    assert.equal(await store.has(saved.sha256), false);
    await store.remove(saved.sha256); // already gone: no error
    assert.deepEqual(await files(), []);
    await assert.rejects(store.remove('../etc/passwd'), RangeError);
    await assert.rejects(store.has('ABC'), RangeError);
  });

  test('freeBytes reports a positive byte count', async () => {
    const free = await store.freeBytes();
    assert.ok(Number.isSafeInteger(free) && free > 0, String(free));
  });
});
