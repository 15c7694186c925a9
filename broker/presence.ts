// Which devices are connected, robust to session takeover ([MQTT-3.1.4-2]: a second connection
// with the same client id closes the first). The current connection per id is remembered, and
// only the disconnect of that very connection marks the device offline.

export type PresenceHandler = (deviceId: string, online: boolean) => void;

export class Presence {
  private readonly current = new Map<string, object>();

  constructor(private readonly emit: PresenceHandler) {}

  connected(deviceId: string, connection: object): void {
    const wasOnline = this.current.has(deviceId);
    this.current.set(deviceId, connection);
    if (!wasOnline) this.emit(deviceId, true);
  }

  disconnected(deviceId: string, connection: object): void {
    if (this.current.get(deviceId) !== connection) return; // an older connection, already replaced
    this.current.delete(deviceId);
    this.emit(deviceId, false);
  }

  count(): number {
    return this.current.size;
  }

  /** The current connection of this id, if any. */
  connection(deviceId: string): object | undefined {
    return this.current.get(deviceId);
  }
}
