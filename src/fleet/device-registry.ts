// Every known device, in memory: the announce path reads and updates it without a query.
// Changes are persisted through the repository's group commit.
//
// A device's type is the registered one (`mqota device add`, the API), or for a device nobody
// registered, the type of its first announce. An announce cannot change it: the type decides which
// images the device's certificate may download, so a device claiming another type would gain
// another product's firmware. Changing it is an operator's (audited) action.
import type { DeviceRow, FleetRepository } from '../db/fleet-repository.js';
import type { Announce } from '../protocol/messages.js';

/** A device as the engine sees it: what it announced, and the labels operators gave it. */
export interface DeviceState extends DeviceRow { tags: string[]; channel: string }
export type Device = Readonly<DeviceState>;

export class DeviceRegistry {
  private readonly devices = new Map<string, DeviceState>();
  private readonly byType = new Map<string, Set<string>>();

  constructor(private readonly repository: FleetRepository) {}

  /** Loads every device; all start offline, since no connection survives a restart. */
  /**
   * `resetPresence`: with the embedded broker every device reconnects to this process, so all
   * start offline. On an external broker they are still connected; their retained presence
   * messages, sent again when mqota subscribes, say so.
   */
  async load(opts: { resetPresence: boolean }): Promise<void> {
    for (const row of await this.repository.loadDevices(opts.resetPresence)) this.put(row);
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

  /** A device provisioned by an operator before it ever connects; without a type, its first announce gives it one. */
  register(id: string, type: string | null): Promise<void> {
    return this.save({ id, type, version: null, chip: null, idfVersion: null, secureVersion: null, slot: null, online: false, lastSeenAt: null, health: null, tags: [], channel: 'stable' });
  }

  /**
   * An announce: the device is online and runs what it says. One of another type than the
   * registered one changes nothing but its presence, and says so.
   */
  recordAnnounce(id: string, a: Announce, now: Date): { device: Device; typeMismatch: boolean } {
    const prev = this.devices.get(id);
    if (prev && prev.type !== null && prev.type !== a.type) {
      const row = { ...prev, online: true, lastSeenAt: now };
      void this.save(row);
      return { device: row, typeMismatch: true };
    }
    const row: DeviceState = {
      tags: prev?.tags ?? [], channel: prev?.channel ?? 'stable',
      id, type: a.type, version: a.version, chip: a.chip ?? prev?.chip ?? null, idfVersion: a.idf ?? prev?.idfVersion ?? null,
      secureVersion: a.secureVersion ?? prev?.secureVersion ?? null, slot: a.slot ?? prev?.slot ?? null, online: true, lastSeenAt: now,
      // An announce without a health report keeps the last one (its `at` says how old it is).
      health: a.health ? { ...a.health, at: now.toISOString() } : prev?.health ?? null,
    };
    void this.save(row);
    return { device: row, typeMismatch: false };
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

  /** A device row another instance committed (an announce, a presence change, a new type there). */
  applyCommitted(row: DeviceRow): void {
    const prev = this.devices.get(row.id);
    this.put({ ...row, tags: prev?.tags ?? [], channel: prev?.channel ?? 'stable' });
  }

  /** Labels another instance's operator set. */
  applyLabels(id: string, labels: { tags: string[]; channel: string }): void {
    const prev = this.devices.get(id);
    if (prev) this.put({ ...prev, ...labels });
  }

  /** Operator labels; written at once (not behind), since the API answers with them. */
  async setLabels(id: string, labels: { tags?: string[]; channel?: string }): Promise<Device | undefined> {
    const prev = this.devices.get(id);
    if (!prev) return undefined;
    const next = { ...prev, tags: labels.tags ?? prev.tags, channel: labels.channel ?? prev.channel };
    await this.repository.setDeviceLabels(id, { tags: next.tags, channel: next.channel });
    this.put({ ...this.devices.get(id)!, tags: next.tags, channel: next.channel });
    return this.devices.get(id);
  }

  /** An operator changes what the device is; resolves once committed. Through the group commit, so no queued row of the old type can land after it. */
  async setType(id: string, type: string): Promise<Device | undefined> {
    const prev = this.devices.get(id);
    if (!prev) return undefined;
    if (prev.type !== type) await this.save({ ...prev, type });
    return this.devices.get(id);
  }

  private save(row: DeviceState): Promise<void> {
    this.put(row);
    return this.repository.saveDevice(row);
  }

  private put(row: DeviceState): void {
    const prev = this.devices.get(row.id);
    if (prev?.type != null && prev.type !== row.type) this.byType.get(prev.type)?.delete(row.id);
    this.devices.set(row.id, row);
    if (row.type === null) return;
    let ids = this.byType.get(row.type);
    if (!ids) this.byType.set(row.type, (ids = new Set()));
    ids.add(row.id);
  }
}
