// A byte bound on MQTT packets. mqtt-packet (inside Aedes) buffers a packet until it is complete,
// whatever its declared length (up to 256 MiB), and Aedes has no byte limit of its own (its docs
// say to pair maxInflightInbound "with a transport-level frame limit"). This reads the fixed
// header of each packet as the bytes arrive and stops at the first one declared too large,
// before its body is buffered.

import type { Duplex } from 'node:stream';

const HEADER = 0;
const LENGTH = 1;
const BODY = 2;

/** Follows packet boundaries in an MQTT byte stream (MQTT 3.1.1 §2.2.3: remaining length, 1-4 bytes of 7 bits). */
export class PacketSizeGuard {
  private state = HEADER;
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private remaining = 0;

  constructor(private readonly maxBytes: number) {}

  /** Feeds the next bytes; returns 0 while all packets fit, else the size of the first that does not (Infinity: malformed length). */
  feed(buf: Uint8Array): number {
    let i = 0;
    while (i < buf.length) {
      if (this.state === HEADER) {
        i++;
        this.state = LENGTH;
        this.length = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
      } else if (this.state === LENGTH) {
        const b = buf[i++]!;
        this.length += (b & 0x7f) * this.multiplier;
        this.multiplier *= 128;
        this.lengthBytes++;
        if (b & 0x80) {
          if (this.lengthBytes === 4) return Infinity; // §2.2.3: at most four bytes
          continue;
        }
        const size = 1 + this.lengthBytes + this.length;
        if (size > this.maxBytes) return size;
        this.remaining = this.length;
        this.state = this.remaining > 0 ? BODY : HEADER;
      } else {
        const n = Math.min(this.remaining, buf.length - i);
        i += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = HEADER;
      }
    }
    return 0;
  }
}

/**
 * Puts the guard on a connection's reads. Aedes pulls bytes with `conn.read()` on 'readable';
 * we look at them on the way and, on an oversized packet, destroy the connection and hand Aedes
 * nothing. Costs five numbers per connection, no extra stream or buffer.
 */
export function guardPacketSize(conn: Duplex, maxBytes: number, onOversize: (size: number) => void): void {
  const guard = new PacketSizeGuard(maxBytes);
  const read = conn.read;
  let tripped = false;
  // Anonymous: under tsx, esbuild's keepNames redefines a named function's name, which turns
  // this per-connection function into a slower, larger dictionary-mode object.
  conn.read = function (this: Duplex, size?: number) {
    if (tripped) return null;
    const chunk: unknown = read.call(this, size);
    if (chunk && typeof chunk !== 'string') {
      const over = guard.feed(chunk as Uint8Array);
      if (over > 0) {
        tripped = true;
        onOversize(over);
        conn.destroy();
        return null;
      }
    }
    return chunk;
  };
}
