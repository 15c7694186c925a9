// The ACL contract every broker mqota runs on must keep, run against the embedded broker and
// against Mosquitto on the configuration `mqota broker config` writes: whatever a device tries on
// another device's topics (or the orchestrator's), nothing reaches anyone, nothing reaches mqota,
// and no one takes over another device's session. Markers sent after the attempts show that
// deliveries happened, so "nothing arrived" is checked after something did.
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { MONITOR_FILTERS, PRESENCE_PAYLOAD, topics } from '../../src/topics.js';
import { eventually } from './eventually.js';
import { collectMessages, connectDevice, connectFailure, endAll, subscribeCodes, type ConnectOptions } from './mqtt.js';
import type { ClientCredentials, TestPki } from './pki.js';

export interface MatrixBroker {
  port: number;
  pki: TestPki;
  /** Publishes as mqota (QoS 1). */
  publish(topic: string, payload: string): Promise<void>;
  /** What mqota heard so far: `{id} {kind} {payload}` for device messages, `{id} presence {online}`. */
  heard: string[];
  /**
   * The embedded broker answers a forbidden SUBSCRIBE with 0x80; Mosquitto's acl_file grants it
   * and delivers nothing the client may not read (its ACL is checked per message).
   */
  refusesSubscriptions: boolean;
  /** A monitor certificate the broker knows (Mosquitto's ACL names monitors). */
  monitor: { id: string; credentials?: ClientCredentials };
}

/** Runs the matrix with device ids starting with `prefix`. */
export async function checkAclMatrix(b: MatrixBroker, prefix: string): Promise<void> {
  const conn = (extra: Partial<ConnectOptions> = {}): ConnectOptions => ({ port: b.port, pki: b.pki, ...extra });
  const victimId = `${prefix}-victim`;
  const attackerId = `${prefix}-attacker`;
  const victim = await connectDevice(victimId, conn());
  const watcher = await connectDevice(b.monitor.id, conn({ role: 'monitor', credentials: b.monitor.credentials, clean: true }));
  const attacker = await connectDevice(attackerId, conn());
  const others: MqttClient[] = [];
  let victimClosed = 0;
  victim.on('close', () => { victimClosed++; });
  try {
    assert.deepEqual(await subscribeCodes(victim, topics.command(victimId)), [1]);
    assert.deepEqual(await subscribeCodes(watcher, [...MONITOR_FILTERS]), [1, 1, 1]);
    const seenByVictim = collectMessages(victim);
    const seenByWatcher = collectMessages(watcher);
    const seenByAttacker = collectMessages(attacker);

    // Every subscription outside its own command topic.
    const forbidden = [topics.command(victimId), topics.announce(victimId), topics.status(victimId), topics.presence(victimId), topics.command('+'),
      'devices/+/+', `devices/${victimId}/#`, '#', '+/+/+', '$SYS/#', 'rollouts/#', 'fleet/#', topics.status('+'), topics.announce(attackerId), topics.status(attackerId)];
    for (const filter of forbidden) {
      const codes = await subscribeCodes(attacker, filter);
      if (b.refusesSubscriptions) assert.deepEqual(codes, [0x80], filter);
    }
    assert.deepEqual(await subscribeCodes(attacker, topics.command(attackerId)), [1]);

    // Every publish outside its own announce, status and presence, each from a connection of its own
    // (the embedded broker closes the connection of a refused publish; Mosquitto drops the message).
    const forgeries: [string, string, boolean][] = [
      [topics.announce(victimId), '{"type":"forged","version":"9.9.9"}', false], [topics.status(victimId), '{"updateId":"u_forged","state":"succeeded"}', false],
      [topics.presence(victimId), PRESENCE_PAYLOAD.offline, true], [topics.command(victimId), '{"action":"forged"}', false],
      [topics.command(attackerId), '{"action":"forged"}', false], [topics.rolloutProgress('ro_forged'), 'forged', true],
      [topics.fleetEvents(victimId), 'forged', false], ['$SYS/forged', 'forged', false],
    ];
    for (const [i, [topic, payload, retain]] of forgeries.entries()) {
      const forger = await connectDevice(`${prefix}-forger-${i}`, conn());
      others.push(forger);
      // Answered either way: a PUBACK (dropped) or a closed connection (refused).
      await new Promise<void>((resolve) => {
        forger.once('close', () => resolve());
        forger.publish(topic, payload, { qos: 1, retain }, () => resolve());
      });
      await endAll(forger);
    }

    // A connection with another device's certificate and the victim's client id takes nothing over
    // (refused by the embedded broker; Mosquitto gives it its own CN as client id).
    const takeover = await connectFailure(`${prefix}-thief`, conn({ clientId: victimId }));
    if (takeover.connected === false) assert.equal(takeover.returnCode, 5);

    // Markers, after everything above.
    await victim.publishAsync(topics.status(victimId), 'marker', { qos: 1 });
    await b.publish(topics.command(victimId), 'marker');
    await b.publish(topics.command(attackerId), 'marker');
    await b.publish(topics.rolloutProgress('ro_marker'), 'marker');
    await eventually(() => seenByVictim.length > 0 && seenByAttacker.length > 0 && seenByWatcher.length >= 2
      && b.heard.includes(`${victimId} status marker`), 30_000, 'the markers');

    assert.deepEqual(seenByVictim, [{ topic: topics.command(victimId), payload: 'marker' }]);
    assert.deepEqual(seenByAttacker, [{ topic: topics.command(attackerId), payload: 'marker' }]);
    const byTopic = (a: { topic: string }, c: { topic: string }) => a.topic.localeCompare(c.topic);
    assert.deepEqual(seenByWatcher.sort(byTopic), [{ topic: topics.rolloutProgress('ro_marker'), payload: 'marker' }, { topic: topics.status(victimId), payload: 'marker' }].sort(byTopic));
    assert.ok(!b.heard.some((h) => h.includes('forged')), b.heard.join('\n'));
    assert.ok(!b.heard.includes(`${victimId} presence false`), b.heard.join('\n'));
    assert.equal(victimClosed, 0, 'the victim kept its connection');
    assert.ok(victim.connected);
  } finally {
    await endAll(victim, watcher, attacker, ...others);
  }
}
