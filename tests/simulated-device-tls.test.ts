// A simulated device (`mqota simulate`, the bench's fleet) must cost the server what an ESP32 does:
// it offers mbedTLS's key-exchange groups, not whatever the Node running it prefers (Node 24 would
// offer a post-quantum hybrid first, which holds more server memory per connection).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { deviceSecureContext, DEVICE_KEY_EXCHANGE_GROUPS } from '../src/simulation/mqtt-device.js';
import { createTestPki, type TestPki } from './support/pki.js';

let pki: TestPki;
before(async () => { pki = await createTestPki(); });
after(async () => { await pki?.cleanup(); });

/** Handshakes a simulated device with a server that offers only `groups`; the group agreed on, or the error. */
async function handshake(groups: string): Promise<string> {
  const server = tls.createServer({ ...pki.serverTls, ca: pki.serverTls.clientCa, requestCert: true, rejectUnauthorized: true, ecdhCurve: groups }, (s) => s.end());
  server.on('tlsClientError', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const device = await pki.issue('tls-groups-device');
    const socket = tls.connect({
      host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername: 'localhost',
      secureContext: deviceSecureContext({ ca: device.caPem, cert: device.certPem, key: device.keyPem }),
    });
    try {
      await once(socket, 'secureConnect');
      const info = socket.getEphemeralKeyInfo() as tls.EphemeralKeyInfo | null;
      return info?.name ?? '(none)';
    } catch (err) {
      return `error: ${(err as Error).message}`;
    } finally {
      socket.destroy();
    }
  } finally {
    server.close();
  }
}

test('a simulated device agrees on the groups an ESP32 offers and on no other', async () => {
  assert.deepEqual(DEVICE_KEY_EXCHANGE_GROUPS.split(':'), ['X25519', 'P-256', 'P-384']);
  assert.equal(await handshake('X25519'), 'X25519');
  assert.equal(await handshake('P-256'), 'prime256v1');
  assert.equal(await handshake('P-384'), 'secp384r1');
  // A group an ESP32 would not offer: no handshake.
  assert.match(await handshake('P-521'), /^error: /);
});
