// Whole firmware images held in memory, least recently used first out, bounded by bytes. A rollout
// sends every device of a type to the same few images; reading each from disk through a 64 KiB
// file stream and writing it to TLS chunk by chunk cost mqota about six times nginx's CPU per
// byte (bench/README.md, "Images"). From memory an image (or a range of it, a slice of the same
// buffer, no copy) goes to the socket in one write. Images are content-addressed, so a cached
// image never goes stale; one removed from the store leaves the cache at once (ImageStore.onRemove).
import { readFile } from 'node:fs/promises';
import type { ImageStore } from './image-store.js';

export class ImageCache {
  private readonly entries = new Map<string, Buffer>();
  /** Reads under way, so a hundred devices asking at once cause one read. */
  private readonly loading = new Map<string, Promise<Buffer | null | 'uncached'>>();
  private bytes = 0;

  constructor(private readonly store: ImageStore, readonly maxBytes: number) {
    store.onRemove((sha256) => this.evict(sha256));
  }

  get size(): { images: number; bytes: number } {
    return { images: this.entries.size, bytes: this.bytes };
  }

  /**
   * The image's bytes, or null when the store does not have it, or `uncached` when it is larger
   * than the cache (the caller streams it from the file instead).
   */
  async get(sha256: string): Promise<Buffer | null | 'uncached'> {
    const hit = this.entries.get(sha256);
    if (hit) {
      this.entries.delete(sha256); // most recently used: last in the map's order
      this.entries.set(sha256, hit);
      return hit;
    }
    const pending = this.loading.get(sha256);
    if (pending) return pending;
    const load = this.read(sha256).then((bytes) => {
      // Removed while it was being read: serve this once, keep nothing.
      if (Buffer.isBuffer(bytes) && this.loading.get(sha256) === load) this.insert(sha256, bytes);
      return bytes;
    }).finally(() => { if (this.loading.get(sha256) === load) this.loading.delete(sha256); });
    this.loading.set(sha256, load);
    return load;
  }

  private async read(sha256: string): Promise<Buffer | null | 'uncached'> {
    const { size, exists } = await this.store.sizeOf(sha256);
    if (!exists) return null;
    if (size > this.maxBytes) return 'uncached';
    try {
      return await readFile(this.store.pathOf(sha256));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  evict(sha256: string): void {
    this.loading.delete(sha256);
    const entry = this.entries.get(sha256);
    if (!entry) return;
    this.entries.delete(sha256);
    this.bytes -= entry.length;
  }

  private insert(sha256: string, bytes: Buffer): void {
    if (this.entries.has(sha256) || bytes.length > this.maxBytes) return;
    for (const [oldest, entry] of this.entries) {
      if (this.bytes + bytes.length <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= entry.length;
    }
    this.entries.set(sha256, bytes);
    this.bytes += bytes.length;
  }
}
