// Aedes announces every client's connect, disconnect, subscribe and unsubscribe on
// `$SYS/<broker id>/…` so that the other brokers of a cluster (sharing one message router) close
// a session taken over elsewhere. The embedded broker is one instance, which takes a session over
// by itself (Aedes' registerClient), and no role may subscribe to `$SYS` (acl.ts): nobody receives
// them, and each cost a packet, a payload and a topic match a device. Aedes' heartbeat and birth
// stay: it reads its own heartbeat to tell the wills of live brokers from those of dead ones.
import type { Aedes } from 'aedes';

const CLIENT_EVENTS = new Set(['new/clients', 'disconnect/clients', 'new/subscribes', 'new/unsubscribes']);

/** Whether `topic` is one of broker `id`'s per-client announcements. */
export function isClusterAnnouncement(topic: string, id: string): boolean {
  const prefix = `$SYS/${id}/`;
  return topic.startsWith(prefix) && CLIENT_EVENTS.has(topic.slice(prefix.length));
}

/** Makes `aedes` skip its per-client `$SYS` announcements; every other publish is unchanged. */
export function dropClusterAnnouncements(aedes: Aedes): void {
  const publish = aedes.publish.bind(aedes);
  aedes.publish = (packet: Parameters<Aedes['publish']>[0], done: Parameters<Aedes['publish']>[1]) => {
    // `$` first: a device's topics never start with it, so their publishes pay one comparison.
    if (packet.topic.charCodeAt(0) === 36 && isClusterAnnouncement(packet.topic, aedes.id)) {
      done?.(); // Aedes' own calls pass one; an embedder's may not
      return;
    }
    publish(packet, done);
  };
}
