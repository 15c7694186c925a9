// The broker's connection limit (broker/connection-limit.ts): device connections stop at the
// open-file limit minus a reserve, so the database, uploads and HTTPS keep their descriptors. Past
// the limit a device is closed at accept and counted; the service goes on serving, and a device
// gets in again once another has left.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { maxDeviceConnections, openFileLimit, RESERVED_DESCRIPTORS } from '../broker/connection-limit.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { connectDevice, connectFailure, endAll } from './support/mqtt.js';
import { eventually } from './support/eventually.js';
import { announce, startTestServer, type TestServer } from './support/server.js';

test('the open-file limit is read from /proc/self/limits; the device limit keeps a reserve', () => {
  const limits = 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                20000                files\n';
  assert.equal(openFileLimit(limits), 20_000);
  assert.equal(openFileLimit('Max open files            unlimited            unlimited            files\n'), null);
  assert.equal(openFileLimit(null), null);
  assert.equal(maxDeviceConnections(null, 20_000), 20_000 - RESERVED_DESCRIPTORS);
  assert.equal(maxDeviceConnections(null, 1_024), 768, 'a quarter of a small limit stays free');
  assert.equal(maxDeviceConnections(50, 20_000), 50, 'MQTT_MAX_CONNECTIONS decides');
  assert.equal(maxDeviceConnections(null, null), null);
  if (process.platform === 'linux') assert.ok((openFileLimit() ?? Infinity) > 0);
});

describe('past the connection limit', () => {
  let server: TestServer;
  const held: MqttClient[] = [];
  before(async () => { server = await startTestServer({ env: { MQTT_MAX_CONNECTIONS: '2' } }); });
  after(async () => { await endAll(...held); await server?.close(); });

  test('a device is closed at accept and counted, uploads still work, and it gets in once another left', async () => {
    held.push(await server.device('limit-1'), await server.device('limit-2'));
    const refused = await connectFailure('limit-3', { port: server.mqota.mqttPort, pki: server.pki });
    assert.equal(refused.connected, false);
    const metrics = async () => server.api.call<string>('GET', '/metrics');
    await eventually(async () => /mqota_mqtt_refusals_total\{reason="too-many-connections"\} [1-9]/.test(await metrics()), 30_000, 'the refusal counted');
    // The service keeps its own descriptors: an upload and an announce are answered.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-limit-'));
    const file = path.join(dir, 'limit-1.0.0.bin');
    await writeFile(file, buildEspAppImage({ projectName: 'limit', version: '1.0.0', payloadBytes: 4096 }));
    await server.api.uploadFirmware(file, {});
    assert.equal((await announce(held[0]!, 'limit-1', { type: 'limit', version: '1.0.0' })).action, 'none');
    await endAll(held.shift()!);
    // The count drops when the first connection's close is seen: the next one may take a moment.
    const third = await eventually(async () => connectDevice('limit-3', { port: server.mqota.mqttPort, pki: server.pki }).catch(() => null), 30_000, 'a device in again');
    held.push(third);
  });
});
