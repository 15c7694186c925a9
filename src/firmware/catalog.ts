// The firmware catalog: rows in the database, the newest state in memory for the announce path,
// image files in the content-addressed ImageStore.
import { randomUUID } from 'node:crypto';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { ImageStore } from './image-store.js';
import type { SharedCaches } from '../cluster/shared-caches.js';

export interface Firmware {
  id: string; type: string; version: string; channel: string; notes: string | null;
  sha256: string; size: number; chip: string | null; projectName: string | null; imageVersion: string | null;
  buildId: string | null; idfVersion: string | null; secureVersion: number | null; createdAt: Date; deletedAt: Date | null;
  /** ImageSignature[] (src/firmware/image-signatures.ts) as read at upload; null: none. */
  signatures?: unknown;
}

export type NewFirmware = Omit<Firmware, 'id' | 'createdAt' | 'deletedAt'>;

export class DuplicateFirmwareError extends Error {}

export class FirmwareCatalog {
  private readonly firmware = new Map<string, Firmware>();

  constructor(private readonly prisma: PrismaClient, readonly images: ImageStore, private readonly shared?: SharedCaches) {
    shared?.register('catalog', () => this.load());
  }

  /** (Re)reads the whole catalog: at start, and when another instance changed it. */
  async load(): Promise<void> {
    const rows = await this.prisma.firmware.findMany();
    this.firmware.clear();
    for (const fw of rows) this.firmware.set(fw.id, fw);
  }

  get(id: string): Firmware | undefined {
    const fw = this.firmware.get(id);
    return fw && !fw.deletedAt ? fw : undefined;
  }

  /**
   * As get, for an id an operator gave: firmware another instance just added is read from the
   * database (its notice may still be on the way), so an upload through one instance and a
   * rollout through another, behind a load balancer, agree.
   */
  async find(id: string): Promise<Firmware | undefined> {
    const known = this.get(id);
    if (known || !this.shared?.clustered) return known;
    const row = await this.prisma.firmware.findUnique({ where: { id } });
    if (row) this.firmware.set(row.id, row);
    return row && !row.deletedAt ? row : undefined;
  }

  /** Includes deleted firmware, for the history of old attempts. */
  getAny(id: string): Firmware | undefined {
    return this.firmware.get(id);
  }

  list(filter: { type?: string } = {}): Firmware[] {
    return [...this.firmware.values()]
      .filter((f) => !f.deletedAt && (!filter.type || f.type === filter.type))
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
  }

  /** Whether firmware of this type (not deleted) has this image: a device may download it. */
  hasImage(type: string, sha256: string): boolean {
    for (const f of this.firmware.values()) if (!f.deletedAt && f.type === type && f.sha256 === sha256) return true;
    return false;
  }

  /**
   * The catalog version of the image whose own (app descriptor) version is `imageVersion`, for a
   * device that runs an image whose version string is not semver (docs/protocol.md).
   */
  versionOfImage(type: string, imageVersion: string): string | undefined {
    for (const f of this.firmware.values()) if (f.type === type && f.imageVersion === imageVersion) return f.version;
    return undefined;
  }

  hasType(type: string): boolean {
    for (const f of this.firmware.values()) if (!f.deletedAt && f.type === type) return true;
    return false;
  }

  async add(input: NewFirmware): Promise<Firmware> {
    const existing = [...this.firmware.values()].find((f) => f.type === input.type && f.version === input.version);
    if (existing) {
      throw new DuplicateFirmwareError(existing.deletedAt
        ? `${input.type} ${input.version} was released and deleted before; a version is never reused`
        : `${input.type} ${input.version} is already in the catalog (${existing.id})`);
    }
    try {
      const fw = await this.prisma.firmware.create({ data: { id: `fw_${randomUUID()}`, ...input, signatures: (input.signatures ?? undefined) as never } });
      this.firmware.set(fw.id, fw);
      await this.shared?.changed('catalog');
      return fw;
    } catch (err) {
      if ((err as { code?: string }).code === 'P2002') throw new DuplicateFirmwareError(`${input.type} ${input.version} is already in the catalog`);
      throw err;
    }
  }

  /** Removes firmware: hard when no rollout ever used it, soft (history kept) otherwise; the file goes unless other firmware shares it. */
  async remove(id: string): Promise<void> {
    const fw = this.get(id);
    if (!fw) return;
    const used = await this.prisma.rollout.count({ where: { firmwareId: id } });
    if (used) {
      const deleted = await this.prisma.firmware.update({ where: { id }, data: { deletedAt: new Date() } });
      this.firmware.set(id, deleted);
    } else {
      await this.prisma.firmware.delete({ where: { id } });
      this.firmware.delete(id);
    }
    await this.shared?.changed('catalog');
    if (![...this.firmware.values()].some((f) => !f.deletedAt && f.sha256 === fw.sha256)) await this.images.remove(fw.sha256);
  }
}
