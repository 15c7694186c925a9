// One device's messages are handled one at a time, in the order they arrived.
//
// The broker reads a connection in batches and starts the handler of every packet in a batch at
// once (Aedes' enqueue; on an external broker mqota's one connection carries every device). A
// device's announce and its next status report can share a batch when the server is slow to
// read. Handled side by side, the report committed first and the announce was acknowledged
// later; killed in between, the server left the announce unacknowledged behind a committed
// report, and the device sent the announce again after the restart. That stale announce (the
// old version, from before the device reported `rebooting`) then read as a rollback, and the
// device's acknowledged `succeeded` that followed found a finished attempt (fault-injection test,
// kill -9 on PGlite). One at a time, a message is committed and acknowledged before the next one
// of its device is looked at, so nothing is committed behind an unacknowledged earlier message,
// and PUBACKs go out in the order the PUBLISHes came [MQTT-4.6.0-2].
import type { DeviceMessage } from '../../broker/index.js';

type Handler = (m: DeviceMessage) => Promise<void>;

/**
 * Wraps a device-message handler so one device's messages run one after another. Different
 * devices still run side by side. A message whose predecessor failed is not handled either (it
 * rejects with the same error): its connection is being closed unacknowledged, and the device
 * sends both again, in order.
 */
export function oneAtATimePerDevice(handler: Handler): Handler {
  // The last message of each device with one still running; none for a device at rest.
  const tails = new Map<string, Promise<void>>();
  return (m) => {
    const before = tails.get(m.deviceId);
    // A device at rest (nearly always) is handled at once, without a turn of the loop.
    const run = before ? before.then(() => handler(m)) : handler(m);
    tails.set(m.deviceId, run);
    const forget = () => { if (tails.get(m.deviceId) === run) tails.delete(m.deviceId); };
    run.then(forget, forget);
    return run;
  };
}
