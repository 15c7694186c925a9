// Every known device, in memory: the announce path reads and updates it without a query.
// Changes are persisted through the write-behind queue.
import type { DeviceRow, WriteBehind } from '../db/write-behind.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Announce } from '../protocol/messages.js';

/** A device as the engine sees it: what it announced, and the labels operators gave it. */
export interface DeviceState extends DeviceRow { tags: string[]; channel: string }
export type Device = Readonly<DeviceState>;

export class DeviceRegistry {
  private readonly devices = new Map<string, DeviceState>();
  private readonly byType = new Map<string, Set<string>>();

  constructor(private readonly writes: WriteBehind) {}

  /** Loads every device; all start offline, since no connection survives a restart. */
  async load(prisma: PrismaClient): Promise<void> {
    await prisma.device.updateMany({ where: { online: true }, data: { online: false } });
    const rows = await prisma.device.findMany({
      select: { id: true, type: true, version: true, chip: true, idfVersion: true, secureVersion: true, slot: true, online: true, lastSeenAt: true, tags: true, channel: true },
    });
    for (const row of rows) this.put(row);
  }

  get(id: string): Device | undefined {
    return this.devices.get(id);
  }

  all(): IterableIterator<Device> {
    return this.devices.values();
  }

  ofType(type: string): Device[] {
    const ids = this.byType.get(type);
    return ids ? [...ids].map((id) => this.devices.get(id)!) : [];
  }

  get size(): number {
    return this.devices.size;
  }

  onlineCount(): number {
    let n = 0;
    for (const d of this.devices.values()) if (d.online) n++;
    return n;
  }

  /** A device provisioned by an operator before it ever connects. */
  register(id: string, type: string): Promise<void> {
    return this.save({ id, type, version: null, chip: null, idfVersion: null, secureVersion: null, slot: null, online: false, lastSeenAt: null, tags: [], channel: 'stable' });
  }

  recordAnnounce(id: string, a: Announce, now: Date): Device {
    const prev = this.devices.get(id);
    const row: DeviceState = {
      tags: prev?.tags ?? [], channel: prev?.channel ?? 'stable',
      id, type: a.type, version: a.version, chip: a.chip ?? prev?.chip ?? null, idfVersion: a.idf ?? prev?.idfVersion ?? null,
      secureVersion: a.secureVersion ?? prev?.secureVersion ?? null, slot: a.slot ?? prev?.slot ?? null, online: true, lastSeenAt: now,
    };
    void this.save(row);
    return row;
  }

  /** Records the version a device reports after an update, before its next announce. */
  recordVersion(id: string, version: string): void {
    const prev = this.devices.get(id);
    if (prev) void this.save({ ...prev, version });
  }

  /** Presence from the broker. A device that connects but never announced is not registered by it. */
  recordPresence(id: string, online: boolean, now: Date): Device | undefined {
    const prev = this.devices.get(id);
    if (!prev) return undefined;
    const row = { ...prev, online, lastSeenAt: now };
    void this.save(row);
    return row;
  }

  /** Operator labels; written at once (not behind), since the API answers with them. */
  async setLabels(prisma: PrismaClient, id: string, labels: { tags?: string[]; channel?: string }): Promise<Device | undefined> {
    const prev = this.devices.get(id);
    if (!prev) return undefined;
    const next = { ...prev, tags: labels.tags ?? prev.tags, channel: labels.channel ?? prev.channel };
    await prisma.device.update({ where: { id }, data: { tags: next.tags, channel: next.channel } });
    this.put(next);
    return next;
  }

  private save(row: DeviceState): Promise<void> {
    this.put(row);
    return this.writes.device(row);
  }

  private put(row: DeviceState): void {
    const prev = this.devices.get(row.id);
    if (prev && prev.type !== row.type) this.byType.get(prev.type)?.delete(row.id);
    this.devices.set(row.id, row);
    let ids = this.byType.get(row.type);
    if (!ids) this.byType.set(row.type, (ids = new Set()));
    ids.add(row.id);
  }
}
