// Revoking client certificates, over the real TLS broker and HTTPS API: a revoked device or
// operator certificate loses its live connection and gets CONNACK 5 from then on, across a
// restart; a new certificate for the same device works; a certificate mqota did not issue can be
// revoked by its serial; and the API refuses what it cannot do.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { closedWithin, connectDevice, connectFailure, endAll } from './support/mqtt.js';
import type { ClientCredentials } from './support/pki.js';
import { DATABASES, startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;
const serialOf = (certPem: string) => new X509Certificate(certPem).serialNumber.toLowerCase().replace(/^0+(?=.)/, '');

for (const database of DATABASES) {
  describe(`certificate revocation (${database})`, () => {
    let server: TestServer;
    const open: MqttClient[] = [];

    before(async () => { server = await startTestServer({ database }); });
    after(async () => {
      await endAll(...open);
      await server?.close();
    });

    const connectWith = async (id: string, credentials: ClientCredentials, clean = false) => {
      const client = await connectDevice(id, { port: server.mqota.mqttPort, pki: server.pki, credentials, clean });
      open.push(client);
      return client;
    };
    const refusal = (id: string, credentials: ClientCredentials) => connectFailure(id, { port: server.mqota.mqttPort, pki: server.pki, credentials });
    const status = (p: Promise<unknown>) => p.then(() => 200, (e: { statusCode?: number }) => e.statusCode);

    test('a revoked device certificate is cut off and refused; a new one works; both survive a restart', async () => {
      const provisioned = await server.api.call<Json>('POST', '/api/devices', { id: 'rv-1', type: 'lamp' });
      const first = provisioned.bundle as ClientCredentials;
      const live = await connectWith('rv-1', first);
      const closed = closedWithin(live); // listening before the revocation, which may close it before the answer arrives

      const res = await server.api.call<Json>('POST', '/api/devices/rv-1/revoke', { reason: 'stolen' });
      assert.deepEqual(res.revoked.map((c: Json) => [c.serial, c.fingerprint, c.reason, c.revokedBy]),
        [[serialOf(first.certPem), provisioned.bundle.fingerprint, 'stolen', 'admin']]);
      assert.equal(res.disconnected, true);
      assert.deepEqual(Object.keys(res.revoked[0]).sort(), ['createdAt', 'fingerprint', 'notAfter', 'reason', 'revokedAt', 'revokedBy', 'serial']);
      assert.ok(await closed, 'the live connection was closed');
      assert.equal((await refusal('rv-1', first)).returnCode, 5);
      assert.equal(await status(server.api.call('POST', '/api/devices/rv-1/revoke', {})), 409, 'nothing left to revoke');

      const rotated = await server.api.call<Json>('POST', '/api/devices/rv-1/certificate');
      assert.notEqual(rotated.bundle.fingerprint, provisioned.bundle.fingerprint);
      (await connectWith('rv-1', rotated.bundle)).end(true);

      const detail = await server.api.call<Json>('GET', '/api/devices/rv-1');
      assert.deepEqual(detail.certificates.map((c: Json) => [c.serial, c.revokedAt !== null]),
        [[serialOf(rotated.bundle.certPem), false], [serialOf(first.certPem), true]]);

      await server.restart();
      assert.equal((await refusal('rv-1', first)).returnCode, 5, 'still revoked after a restart');
      (await connectWith('rv-1', rotated.bundle)).end(true);
    });

    test('a certificate mqota did not issue is revoked by its serial, in any spelling; the device keeps its others', async () => {
      await server.api.call('POST', '/api/devices', { id: 'rv-2', type: 'lamp' });
      const own = await server.pki.issue('rv-2'); // signed by the same device CA, outside mqota
      const node = new X509Certificate(own.certPem).serialNumber; // upper case, leading zeros kept
      const live = await connectWith('rv-2', own);
      const closed = closedWithin(live);

      const res = await server.api.call<Json>('POST', '/api/devices/rv-2/revoke', { serial: node.match(/../g)!.join(':') });
      assert.deepEqual(res.revoked.map((c: Json) => [c.serial, c.fingerprint]), [[serialOf(own.certPem), null]]);
      assert.ok(await closed);
      assert.equal((await refusal('rv-2', own)).returnCode, 5);

      const issued = await server.api.call<Json>('POST', '/api/devices/rv-2/certificate');
      (await connectWith('rv-2', issued.bundle)).end(true);

      // Someone else's certificate, a serial revoked already, and no serial at all.
      const other = await server.api.call<Json>('POST', '/api/devices', { id: 'rv-3', type: 'lamp' });
      assert.equal(await status(server.api.call('POST', '/api/devices/rv-2/revoke', { serial: serialOf(other.bundle.certPem) })), 409);
      assert.equal(await status(server.api.call('POST', '/api/devices/rv-2/revoke', { serial: node })), 409);
      assert.equal(await status(server.api.call('POST', '/api/devices/rv-2/revoke', { serial: 'not-hex' })), 400);
      assert.equal(await status(server.api.call('POST', '/api/devices/nobody/revoke', {})), 404);
      (await connectWith('rv-3', other.bundle)).end(true);
    });

    test('only an admin token may revoke', async () => {
      const { token } = await server.api.call<Json>('POST', '/api/tokens', { name: `ops-${database}`, role: 'operator' });
      const res = await fetch(`${server.mqota.publicUrl}/api/devices/rv-3/revoke`, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}',
        // @ts-expect-error undici's dispatcher option: trust the test CA
        dispatcher: new (await import('undici')).Agent({ connect: { ca: server.pki.caPem } }),
      });
      assert.equal(res.status, 403);
      const other = await server.api.call<Json>('GET', '/api/devices/rv-3');
      assert.ok(other.certificates.every((c: Json) => c.revokedAt === null));
    });

    test('removing an operator revokes its certificate and closes its connection; the name can be issued again', async () => {
      const issued = (await server.api.call<Json>('POST', '/api/operators', { name: 'grafana', role: 'monitor' })).bundle as ClientCredentials;
      const live = await connectWith('grafana', issued, true);
      const closed = closedWithin(live);

      const res = await server.api.call<Json>('DELETE', '/api/operators/grafana');
      assert.deepEqual(res.revoked.map((c: Json) => c.serial), [serialOf(issued.certPem)]);
      assert.equal(res.disconnected, true);
      assert.ok(await closed);
      assert.equal((await refusal('grafana', issued)).returnCode, 5);
      assert.deepEqual(await server.api.call('GET', '/api/operators'), []);
      assert.equal(await status(server.api.call('DELETE', '/api/operators/grafana')), 404);

      const again = (await server.api.call<Json>('POST', '/api/operators', { name: 'grafana', role: 'monitor' })).bundle as ClientCredentials;
      (await connectWith('grafana', again, true)).end(true);
      assert.equal((await refusal('grafana', issued)).returnCode, 5, 'the old certificate stays revoked');
    });
  });
}
