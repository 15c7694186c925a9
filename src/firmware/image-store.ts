// Firmware images on disk, named by the SHA-256 of their bytes. A name is only
// ever given to a complete, flushed file, so a device that is told a hash can
// trust the file behind it; uploads that fail part-way leave nothing.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ESP_IMAGE_HEADER_BYTES } from './esp-image.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;
const TEMP_PREFIX = '.upload-';
const TEMP_SUFFIX = '.part';

export class ImageTooLargeError extends Error {
  override readonly name = 'ImageTooLargeError';
  constructor(readonly limit: number) {
    super(`image exceeds the ${limit}-byte limit`);
  }
}

export class EmptyImageError extends Error {
  override readonly name = 'EmptyImageError';
  constructor() {
    super('image is empty');
  }
}

/** The store's filesystem has no room left for the image (ENOSPC, or the quota: EDQUOT). */
export class ImageStoreFullError extends Error {
  override readonly name = 'ImageStoreFullError';
  constructor(readonly dir: string, readonly bytesWritten: number) {
    super(`the image store is full: no space left in ${dir} after ${bytesWritten} bytes of the image; free space there or upload a smaller image`);
  }
}

export interface SavedImage {
  sha256: string;
  size: number;
  /** The first ESP_IMAGE_HEADER_BYTES bytes (fewer if the image is shorter). */
  head: Buffer;
  path: string;
}

export class ImageStore {
  private readonly removeListeners: ((sha256: string) => void)[] = [];

  constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {}

  /** Creates the directory and removes temp files left by a crash mid-upload. */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const name of await readdir(this.dir)) {
      if (isTempName(name)) await rm(join(this.dir, name), { force: true });
    }
  }

  /**
   * Streams `source` to disk while hashing and counting it, then names the file
   * by its hash. Rejects with ImageTooLargeError as soon as maxBytes is passed,
   * EmptyImageError for no bytes, ImageStoreFullError when the disk is full, or
   * the source's own error; in every failure the temp file is gone before the
   * promise settles.
   */
  async save(source: NodeJS.ReadableStream | Readable): Promise<SavedImage> {
    const tempPath = join(this.dir, `${TEMP_PREFIX}${randomBytes(12).toString('hex')}${TEMP_SUFFIX}`);
    const meter = new ImageMeter(this.maxBytes);
    // 'wx': never reuse a path; flush: fsync before close so a crash after the
    // rename cannot leave a hash-named file with missing bytes.
    const file = createWriteStream(tempPath, { flags: 'wx', flush: true });
    try {
      await pipeline(source, meter, file);
      if (meter.size === 0) throw new EmptyImageError();
      const sha256 = meter.digest();
      const path = this.pathOf(sha256);
      if (await this.has(sha256)) {
        // Same bytes already stored: keep the existing file.
        await rm(tempPath, { force: true });
      } else {
        await rename(tempPath, path);
      }
      return { sha256, size: meter.size, head: meter.head(), path };
    } catch (err) {
      await closed(file);
      await rm(tempPath, { force: true });
      throw isNoSpace(err) ? new ImageStoreFullError(this.dir, meter.size) : err;
    }
  }

  /** The file for a hash; throws RangeError unless it is 64 lowercase hex digits. */
  pathOf(sha256: string): string {
    if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) {
      throw new RangeError('image id must be a lowercase hex SHA-256');
    }
    return join(this.dir, `${sha256}.bin`);
  }

  async remove(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
    for (const listener of this.removeListeners) listener(sha256);
  }

  /** Called after an image is removed (the in-memory image cache forgets it). */
  onRemove(listener: (sha256: string) => void): void {
    this.removeListeners.push(listener);
  }

  /** The image's size in bytes, if the store has it. */
  async sizeOf(sha256: string): Promise<{ exists: boolean; size: number }> {
    try {
      const st = await stat(this.pathOf(sha256));
      return { exists: st.isFile(), size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { exists: false, size: 0 };
      throw err;
    }
  }

  async has(sha256: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(sha256))).isFile();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Bytes available to this (unprivileged) process on the store's filesystem. */
  async freeBytes(): Promise<number> {
    const fs = await statfs(this.dir);
    return fs.bavail * fs.bsize;
  }
}

function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) && name.endsWith(TEMP_SUFFIX);
}

/** Waits until a write stream has released its descriptor, so the file can be removed for good. */
async function closed(file: WriteStream): Promise<void> {
  if (!file.closed) await once(file, 'close').catch(() => undefined);
}

/** Passes bytes through while hashing, counting, keeping the head and enforcing the size limit. */
class ImageMeter extends Transform {
  size = 0;
  private readonly hash = createHash('sha256');
  private readonly headChunks: Buffer[] = [];
  private headBytes = 0;

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer | string, _encoding: BufferEncoding, callback: TransformCallback): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (this.size + bytes.length > this.limit) {
      callback(new ImageTooLargeError(this.limit));
      return;
    }
    this.size += bytes.length;
    this.hash.update(bytes);
    if (this.headBytes < ESP_IMAGE_HEADER_BYTES) {
      const part = bytes.subarray(0, ESP_IMAGE_HEADER_BYTES - this.headBytes);
      // Copy: the source may reuse its buffer after we pass it on.
      this.headChunks.push(Buffer.from(part));
      this.headBytes += part.length;
    }
    callback(null, bytes);
  }

  digest(): string {
    return this.hash.digest('hex');
  }

  head(): Buffer {
    return Buffer.concat(this.headChunks, this.headBytes);
  }
}
