// One server-sent events connection (text/event-stream, WHATWG HTML §9.2): `event: <type>` and
// `data: <json>` lines, a comment as heartbeat so proxies and clients see a live connection, and
// a bound on what may wait in memory for a client that does not read: past it the connection is
// dropped (an EventSource reconnects and the client reloads its state), never left to grow.
import type { ServerResponse } from 'node:http';

export const HEARTBEAT_MS = 15_000;
/** A burst of a large rollout (an attempt and a command event per device) fits; a stalled client does not. */
export const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** What an EventSource waits before reconnecting. */
const RETRY_MS = 3_000;

export class EventStream {
  private readonly heartbeat: NodeJS.Timeout;
  private open = true;
  /** Resolves once the connection is gone, for whatever reason. */
  readonly closed: Promise<void>;

  constructor(
    private readonly res: ServerResponse,
    private readonly opts: { heartbeatMs?: number; maxBufferedBytes?: number; onDrop?: (bufferedBytes: number) => void } = {},
  ) {
    this.closed = new Promise((resolve) => res.once('close', () => { this.open = false; clearInterval(this.heartbeat); resolve(); }));
    res.socket?.setNoDelay(true);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // nginx would otherwise hold events back in its response buffer
      'x-accel-buffering': 'no',
    });
    this.write(`retry: ${RETRY_MS}\n: connected\n\n`);
    this.heartbeat = setInterval(() => this.write(': heartbeat\n\n'), opts.heartbeatMs ?? HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** Sends one event; false when the connection is gone or was just dropped for falling behind. */
  send(type: string, data: unknown): boolean {
    // JSON.stringify escapes line breaks inside strings, so the data is one line.
    return this.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** Ends the stream (server shutdown). */
  end(): void {
    if (!this.open) return;
    this.open = false;
    clearInterval(this.heartbeat);
    this.res.end();
  }

  private write(chunk: string): boolean {
    if (!this.open || this.res.destroyed) return false;
    this.res.write(chunk);
    const buffered = this.res.writableLength;
    if (buffered > (this.opts.maxBufferedBytes ?? MAX_BUFFERED_BYTES)) {
      this.open = false;
      clearInterval(this.heartbeat);
      this.opts.onDrop?.(buffered);
      this.res.destroy();
      return false;
    }
    return true;
  }
}
