// The broker's rules on their own, without a network: topics, identity, ACL, the packet-size
// guard, presence bookkeeping and the Aedes hooks built from them.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, webcrypto } from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import pino from 'pino';
import type { Client, PublishPacket, Subscription } from 'aedes';
import { ACL_RULES, filterWithin, isClaim, mayPublish, mayReceive, maySubscribe, sessionIdentity, topicMatches } from '../broker/acl.js';
import { createHooks } from '../broker/hooks.js';
import { setIdentity } from '../broker/identity.js';
import { DEVICE_ID_PATTERN, identityFromSubject, type Identity } from '../certs/identity.js';
import { PacketSizeGuard } from '../broker/packet-size.js';
import { Presence } from '../broker/presence.js';
import { parseDeviceTopic, provisionTopics, topics } from '../broker/topics.js';

const device: Identity = { id: 'dev-1', role: 'device' };
const monitor: Identity = { id: 'ops', role: 'monitor' };
const service: Identity = { id: 'mqota', role: 'service' };

describe('topics', () => {
  // Spelled out on purpose: this is the wire contract of docs/protocol.md that devices in the field
  // depend on, so a change to the builders must fail here. The same goes for the ACL tables below.
  test('builds and parses device topics', () => {
    assert.equal(topics.announce('a'), 'devices/a/announce');
    assert.equal(topics.command('a'), 'devices/a/command');
    assert.equal(topics.status('a'), 'devices/a/status');
    assert.equal(topics.presence('a'), 'devices/a/presence');
    assert.deepEqual(parseDeviceTopic('devices/a/presence'), { deviceId: 'a', kind: 'presence' });
    assert.deepEqual(parseDeviceTopic('devices/dev.1_x-y/status'), { deviceId: 'dev.1_x-y', kind: 'status' });
    assert.deepEqual(parseDeviceTopic('devices/a/command'), { deviceId: 'a', kind: 'command' });
    for (const t of ['devices/a/other', 'devices/.a/status', 'devices/a/status/x', 'devices//status', 'fleet/a/status', 'devices/+/status']) {
      assert.equal(parseDeviceTopic(t), null, t);
    }
  });

  test('device id pattern', () => {
    for (const ok of ['a', 'A-b_c.d', '_x', '-', 'x'.repeat(64)]) assert.ok(DEVICE_ID_PATTERN.test(ok), ok);
    for (const bad of ['', '.a', 'a/b', 'a+b', '#', 'x'.repeat(65), 'é', 'a b']) assert.ok(!DEVICE_ID_PATTERN.test(bad), bad);
  });
});

describe('identity', () => {
  // Subjects as Node prints them for real certificates, with the tricks a certificate could play.
  const subjectOf = async (name: x509.JsonName): Promise<string> => {
    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = (await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as unknown as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01', name, notBefore: new Date(), notAfter: new Date(Date.now() + 60_000), keys, signingAlgorithm: alg,
    });
    return new X509Certificate(cert.toString('pem')).subject;
  };

  test('CN is the id, OU the role; anything else is no identity', async () => {
    assert.deepEqual(identityFromSubject(await subjectOf([{ CN: ['dev-1'] }, { OU: ['device'] }])), device);
    assert.deepEqual(identityFromSubject(await subjectOf([{ O: ['mqota'] }, { OU: ['monitor'] }, { CN: ['ops'] }])), monitor);
    const refused: [string, x509.JsonName][] = [
      ['unknown role', [{ CN: ['dev-1'] }, { OU: ['admin'] }]],
      ['no role', [{ CN: ['dev-1'] }]],
      ['id outside the pattern', [{ CN: ['.dev'] }, { OU: ['device'] }]],
      ['two CNs', [{ CN: ['dev-1'] }, { OU: ['device'] }, { CN: ['dev-2'] }]],
      ['two OUs', [{ CN: ['dev-1'] }, { OU: ['device'] }, { OU: ['monitor'] }]],
      ['multi-valued RDN', [{ CN: ['dev-1'], OU: ['device'] }]],
      ['two values in one RDN', [{ CN: ['a', 'b'] }, { OU: ['device'] }]],
      ['a newline forging a role', [{ CN: ['dev-1\nOU=monitor'] }, { OU: ['device'] }]],
      ['RFC 2253 escapes', [{ CN: ['dev,1+x'] }, { OU: ['device'] }]],
    ];
    for (const [why, name] of refused) assert.equal(identityFromSubject(await subjectOf(name)), null, why);
    assert.equal(identityFromSubject(undefined), null);
    assert.equal(identityFromSubject(''), null);
  });
});

describe('acl', () => {
  test('a device publishes only its own announce, status and presence', () => {
    assert.ok(mayPublish(device, 'devices/dev-1/announce'));
    assert.ok(mayPublish(device, 'devices/dev-1/status'));
    assert.ok(mayPublish(device, 'devices/dev-1/presence'));
    for (const t of ['devices/dev-1/command', 'devices/dev-2/status', 'devices/dev-2/presence', 'devices/dev-1', '$SYS/x', 'rollouts/r/progress', 'devices/dev-1/status/x']) {
      assert.ok(!mayPublish(device, t), t);
    }
  });

  test('a monitor publishes nothing', () => {
    for (const t of ['rollouts/r/progress', 'fleet/a/events', 'devices/a/status']) assert.ok(!mayPublish(monitor, t), t);
  });

  test('a device subscribes only to exactly its own command topic', () => {
    assert.ok(maySubscribe(device, 'devices/dev-1/command'));
    for (const f of ['devices/dev-2/command', '#', '+/+/+', 'devices/+/command', 'devices/dev-1/#', 'devices/dev-1/+', '$SYS/#', 'rollouts/#']) {
      assert.ok(!maySubscribe(device, f), f);
    }
  });

  test('a monitor subscribes within rollouts/#, fleet/#, devices/+/status', () => {
    for (const f of ['rollouts/#', 'rollouts/+/progress', 'rollouts/r1/progress', 'rollouts', 'fleet/#', 'fleet/a/events', 'devices/+/status', 'devices/a/status']) {
      assert.ok(maySubscribe(monitor, f), f);
    }
    for (const f of ['#', '+/#', 'devices/#', 'devices/+/+', 'devices/+/command', 'devices/a/announce', '+/a/status', '$SYS/#', 'rolloutsx/#', 'devices/+/status/#']) {
      assert.ok(!maySubscribe(monitor, f), f);
    }
  });

  test('the service (mqota on an external broker) reads what devices send and writes commands and status topics, nothing else', () => {
    for (const t of ['devices/a/command', 'rollouts/r1/progress', 'fleet/a/events']) assert.ok(mayPublish(service, t), t);
    for (const t of ['devices/a/announce', 'devices/a/status', 'devices/a/presence', '$SYS/x', 'other']) assert.ok(!mayPublish(service, t), t);
    for (const f of ['devices/+/announce', 'devices/+/status', 'devices/+/presence', 'devices/a/status']) assert.ok(maySubscribe(service, f), f);
    for (const f of ['#', 'devices/+/command', 'devices/#', 'devices/+/+', 'rollouts/#', '$SYS/#']) assert.ok(!maySubscribe(service, f), f);
    assert.ok(mayReceive(service, 'devices/a/announce'));
    assert.ok(!mayReceive(service, 'devices/a/command'));
  });

  test('the table external brokers are configured from says the same, spelled out', () => {
    // The wire contract: a change here changes what Mosquitto and EMQX enforce too.
    assert.deepEqual(ACL_RULES, {
      device: { publish: ['devices/{id}/announce', 'devices/{id}/status', 'devices/{id}/presence'], subscribe: ['devices/{id}/command'] },
      monitor: { publish: [], subscribe: ['rollouts/#', 'fleet/#', 'devices/+/status'] },
      service: { publish: ['devices/+/command', 'rollouts/#', 'fleet/#'], subscribe: ['devices/+/announce', 'devices/+/status', 'devices/+/presence'] },
      claim: { publish: ['provision/{id}/request'], subscribe: ['provision/{id}/response/{device}'] },
    });
  });

  test('deliveries: a device receives only its own commands, a monitor only its topics', () => {
    assert.ok(mayReceive(device, 'devices/dev-1/command'));
    assert.ok(!mayReceive(device, 'devices/dev-2/command'));
    assert.ok(!mayReceive(device, 'devices/dev-1/status'));
    assert.ok(mayReceive(monitor, 'rollouts/r1/progress'));
    assert.ok(mayReceive(monitor, 'devices/a/status'));
    assert.ok(!mayReceive(monitor, 'devices/a/command'));
    assert.ok(!mayReceive(monitor, '$SYS/broker/heartbeat'));
  });

  describe('claim certificates', () => {
    const claimCert: Identity = { id: 'claim-0a1b', role: 'claim' };
    const session = (clientId: string, clean = true) => sessionIdentity(claimCert, clientId, clean);
    const claim = (session('claim-0a1b:dev-7') as { identity: Identity }).identity;

    test('topics of provisioning by claim', () => {
      assert.equal(provisionTopics.request('claim-0a1b'), 'provision/claim-0a1b/request');
      assert.equal(provisionTopics.response('claim-0a1b', 'dev-7'), 'provision/claim-0a1b/response/dev-7');
    });

    test('a claim connects as {claimId}:{deviceId} with a clean session, and nothing else', () => {
      assert.deepEqual(claim, { id: 'claim-0a1b', role: 'claim', deviceId: 'dev-7' });
      assert.ok(isClaim(claim));
      for (const [clientId, clean, why] of [
        ['claim-0a1b', true, 'no device id'], ['claim-0a1b:', true, 'empty device id'], ['dev-7', true, 'a device id alone'],
        ['claim-other:dev-7', true, 'another claim'], ['claim-0a1b:.x', true, 'device id outside the pattern'],
        ['claim-0a1b:a/b', true, 'a topic level separator'], ['claim-0a1b:dev-7', false, 'a persistent session'],
      ] as const) assert.ok('refused' in session(clientId, clean), why);
      // Devices and monitors are unchanged: the client id is the CN.
      assert.deepEqual(sessionIdentity(device, 'dev-1', false), { identity: device });
      assert.ok('refused' in sessionIdentity(device, 'claim-0a1b:dev-1', true));
      assert.ok('refused' in sessionIdentity(device, 'dev-2', false));
    });

    test('a claim publishes only its claim\'s request topic', () => {
      assert.ok(mayPublish(claim, 'provision/claim-0a1b/request'));
      for (const t of ['provision/claim-other/request', 'provision/claim-0a1b/response/dev-7', 'devices/dev-7/announce', 'devices/dev-7/status',
        'devices/claim-0a1b/status', 'provision/claim-0a1b/request/x', 'rollouts/r/progress']) assert.ok(!mayPublish(claim, t), t);
      // A claim certificate without a claimed device id (never stored by the hooks) may do nothing.
      assert.ok(!mayPublish(claimCert, 'provision/claim-0a1b/request'));
    });

    test('a claim subscribes to and receives only its own response topic', () => {
      assert.ok(maySubscribe(claim, 'provision/claim-0a1b/response/dev-7'));
      assert.ok(mayReceive(claim, 'provision/claim-0a1b/response/dev-7'));
      for (const f of ['provision/claim-0a1b/response/+', 'provision/claim-0a1b/response/dev-8', 'provision/claim-0a1b/#', 'provision/+/response/dev-7',
        'provision/claim-0a1b/request', 'devices/dev-7/command', '#', 'rollouts/#']) {
        assert.ok(!maySubscribe(claim, f), f);
      }
      for (const t of ['provision/claim-0a1b/response/dev-8', 'devices/dev-7/command', 'provision/claim-0a1b/request']) assert.ok(!mayReceive(claim, t), t);
      assert.ok(!maySubscribe(claimCert, 'provision/claim-0a1b/response/dev-7'));
      // Devices and monitors cannot reach provisioning topics.
      assert.ok(!mayPublish(device, 'provision/claim-0a1b/request'));
      assert.ok(!maySubscribe(monitor, 'provision/#'));
      assert.ok(!maySubscribe(device, 'provision/claim-0a1b/response/dev-1'));
    });
  });

  test('filterWithin and topicMatches follow MQTT wildcard rules', () => {
    assert.ok(filterWithin('a/+/c', 'a/+/c'));
    assert.ok(filterWithin('a/b/c', 'a/+/c'));
    assert.ok(!filterWithin('a/#', 'a/+/c'));
    assert.ok(!filterWithin('a/+/c', 'a/b/c'));
    assert.ok(filterWithin('a', 'a/#')); // §4.7.1.2: '#' includes the parent level
    assert.ok(!filterWithin('a/b', 'a/b/c'));
    assert.ok(topicMatches('a/#', 'a'));
    assert.ok(topicMatches('a/+/c', 'a/b/c'));
    assert.ok(!topicMatches('a/+/c', 'a/b/c/d'));
    assert.ok(topicMatches('a/+', 'a/')); // §4.7.1.3: empty levels are levels
    assert.ok(!topicMatches('#', '$SYS/x')); // [MQTT-4.7.2-1]
    assert.ok(!topicMatches('+/x', '$SYS/x'));
  });
});

describe('packet size guard', () => {
  /** A PUBLISH-shaped packet of `total` bytes (fixed header included). */
  function packetOf(total: number): Buffer {
    const varintLength = (n: number) => (n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4);
    let body = total - 2;
    for (let lengthBytes = 1; lengthBytes <= 4; lengthBytes++) {
      body = total - 1 - lengthBytes;
      if (varintLength(body) === lengthBytes) break;
    }
    const header: number[] = [0x30];
    let x = body;
    do {
      let b = x % 128;
      x = Math.floor(x / 128);
      if (x > 0) b |= 0x80;
      header.push(b);
    } while (x > 0);
    const p = Buffer.concat([Buffer.from(header), Buffer.alloc(body, 0x61)]);
    assert.equal(p.length, total);
    return p;
  }

  test('passes packets up to the limit and stops at the first larger one', () => {
    const guard = new PacketSizeGuard(1000);
    assert.equal(guard.feed(Buffer.concat([packetOf(2), packetOf(1000), packetOf(131)])), 0);
    assert.equal(guard.feed(packetOf(1001)), 1001);
  });

  test('follows packet boundaries across arbitrary chunking', () => {
    const stream = Buffer.concat([packetOf(300), packetOf(5), packetOf(999), packetOf(17000)]);
    const guard = new PacketSizeGuard(1000);
    let result = 0;
    for (let i = 0; i < stream.length && result === 0; i += 7) result = guard.feed(stream.subarray(i, i + 7));
    assert.equal(result, 17000);
  });

  test('refuses before the body arrives, and refuses malformed lengths', () => {
    const guard = new PacketSizeGuard(64 * 1024);
    assert.equal(guard.feed(Buffer.from([0x30, 0xff, 0xff, 0x7f])), 1 + 3 + 0x1fffff);
    assert.equal(new PacketSizeGuard(100).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff])), Infinity);
  });
});

describe('presence', () => {
  test('online once per device, offline only for the current connection', () => {
    const events: [string, boolean][] = [];
    const presence = new Presence((id, online) => events.push([id, online]));
    const a = {};
    const b = {};
    presence.connected('d', a);
    // Takeover where the new connection registers before the old one's disconnect arrives.
    presence.connected('d', b);
    presence.disconnected('d', a);
    assert.deepEqual(events, [['d', true]]);
    assert.equal(presence.count(), 1);
    // Takeover in Aedes' usual order: old gone first, then the new one.
    presence.disconnected('d', b);
    presence.connected('d', a);
    assert.deepEqual(events, [['d', true], ['d', false], ['d', true]]);
    presence.disconnected('d', a);
    presence.disconnected('d', a);
    assert.deepEqual(events.at(-1), ['d', false]);
    assert.equal(events.length, 4);
    assert.equal(presence.count(), 0);
  });
});

describe('hooks', () => {
  const hooks = createHooks(pino({ level: 'silent' }));
  const clientAs = (identity: Identity | undefined, id = identity?.id ?? 'x') => {
    const client = { id } as unknown as Client;
    if (identity) setIdentity(client, identity);
    return client;
  };
  const publishPacket = (topic: string): PublishPacket => ({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, retain: true, dup: false });
  const authorizePublish = (client: Client | null, packet: PublishPacket) =>
    new Promise<Error | null | undefined>((resolve) => hooks.authorizePublish(client, packet, resolve));
  const authorizeSubscribe = (client: Client, sub: Subscription) =>
    new Promise<Subscription | null | undefined>((resolve, reject) => hooks.authorizeSubscribe(client, sub, (err, s) => (err ? reject(err) : resolve(s))));

  test('authorizeForward withholds anything but the own command topic from a device', () => {
    const client = clientAs(device);
    const own = publishPacket('devices/dev-1/command');
    assert.equal(hooks.authorizeForward(client, own as never), own);
    assert.equal(hooks.authorizeForward(client, publishPacket('devices/dev-2/command') as never), null);
    assert.equal(hooks.authorizeForward(client, publishPacket('rollouts/r/progress') as never), null);
    assert.equal(hooks.authorizeForward(clientAs(undefined), own as never), null);
  });

  test('server-originated publishes bypass the ACL; device publishes are checked and lose retain', async () => {
    assert.equal(await authorizePublish(null, publishPacket('devices/dev-9/command')), null);
    const ok = publishPacket('devices/dev-1/status');
    assert.equal(await authorizePublish(clientAs(device), ok), null);
    assert.equal(ok.retain, false);
    assert.ok((await authorizePublish(clientAs(device), publishPacket('devices/dev-2/status'))) instanceof Error);
    assert.ok((await authorizePublish(clientAs(undefined, 'dev-1'), publishPacket('devices/dev-1/status'))) instanceof Error);
  });

  test('authorizeSubscribe answers null (SUBACK 0x80) when refused and caps QoS at 1', async () => {
    assert.equal(await authorizeSubscribe(clientAs(device), { topic: '#', qos: 1 }), null);
    assert.deepEqual(await authorizeSubscribe(clientAs(device), { topic: 'devices/dev-1/command', qos: 2 }), { topic: 'devices/dev-1/command', qos: 1 });
    assert.equal(await authorizeSubscribe(clientAs(undefined), { topic: 'devices/x/command', qos: 1 }), null);
  });
});
