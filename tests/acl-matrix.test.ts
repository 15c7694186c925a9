// One ACL matrix (support/acl-matrix.ts), two brokers: the embedded one, and Debian's Mosquitto on
// the configuration mqota writes for it from the same rules (broker/acl.ts), with mqota's
// external-broker link as the server side.
import { after, before, describe, test } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { startBroker, type Broker } from '../broker/index.js';
import { writeBrokerConfig } from '../src/device-link/broker-config.js';
import { connectExternalBroker } from '../src/device-link/external-broker.js';
import type { DeviceLink } from '../src/device-link/index.js';
import { checkAclMatrix } from './support/acl-matrix.js';
import { freePort, startMosquitto, type TestMosquitto } from './support/mosquitto.js';
import { createTestPki, type TestPki } from './support/pki.js';

const logger = pino({ level: process.env.MQOTA_TEST_LOG ?? 'silent' });

/** What the server side heard, in the matrix's spelling. */
function listen(link: Pick<DeviceLink, 'onDeviceMessage' | 'onPresence'>): string[] {
  const heard: string[] = [];
  link.onDeviceMessage((m) => { heard.push(`${m.deviceId} ${m.kind} ${m.payload.toString()}`); });
  link.onPresence((id, online) => { heard.push(`${id} presence ${online}`); });
  return heard;
}

describe('ACL matrix on the embedded broker', () => {
  let pki: TestPki;
  let broker: Broker;
  let heard: string[];
  before(async () => {
    pki = await createTestPki();
    broker = await startBroker({ port: 0, host: '127.0.0.1', tls: pki.serverTls, logger });
    heard = listen(broker);
  });
  after(async () => { await broker?.close(); await pki?.cleanup(); });

  test('no device reaches another device\'s topics, or mqota\'s', async () => {
    await checkAclMatrix({
      port: broker.port, pki, heard, refusesSubscriptions: true, monitor: { id: 'matrix-watch' },
      publish: (topic, payload) => broker.publish(topic, payload, { qos: 1 }),
    }, 'emb');
  });
});

describe('ACL matrix on Mosquitto with the configuration mqota writes', () => {
  let pki: TestPki;
  let dir: string;
  let mosquitto: TestMosquitto;
  let link: DeviceLink;
  let heard: string[];
  before(async () => {
    pki = await createTestPki();
    dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-broker-config-'));
    const port = await freePort();
    await writeBrokerConfig(dir, { kind: 'mosquitto', port, brokerDir: dir }, pki.paths, { revokedSerials: [], holders: { monitor: ['matrix-watch'], service: ['matrix-mqota'], claim: [] } });
    mosquitto = await startMosquitto(dir, port);
    const service = await pki.issue('matrix-mqota', 'service');
    link = connectExternalBroker({ url: `mqtts://127.0.0.1:${port}`, ca: pki.caPem, cert: service.certPem, key: service.keyPem, clientId: 'matrix-mqota', sessionExpirySeconds: 300, logger });
    heard = listen(link);
    await link.listen();
  });
  after(async () => {
    await link?.close();
    await mosquitto?.close();
    await rm(dir, { recursive: true, force: true });
    await pki?.cleanup();
  });

  test('no device reaches another device\'s topics, or mqota\'s', async () => {
    await checkAclMatrix({
      port: mosquitto.port, pki, heard, refusesSubscriptions: false, monitor: { id: 'matrix-watch' },
      publish: (topic, payload) => link.publish(topic, payload, { qos: 1 }),
    }, 'mosq');
  });
});
