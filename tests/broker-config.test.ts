// The external broker's files from mqota's ACL table, without a broker: the Mosquitto ACL and
// configuration, the EMQX equivalent (EMQX is not installable here: its files are checked for the
// shape of Erlang terms and HOCON as far as a test can without EMQX), and the CRL as OpenSSL reads it.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { emqxAcl, emqxConf, mosquittoAcl, mosquittoConf, writeBrokerConfig, type CertificateState } from '../src/device-link/broker-config.js';
import { issueDeviceCrl } from '../certs/pki.js';
import { createTestPki } from './support/pki.js';

const run = promisify(execFile);
const state: CertificateState = { revokedSerials: ['e33', '8abc'], holders: { monitor: ['grafana'], service: ['mqota', 'mqota-2'], claim: ['claim-0a1b'] } };

describe('external broker configuration', () => {
  test('the Mosquitto ACL: device rules as CN patterns, monitors and services by name', () => {
    const lines = mosquittoAcl(state).split('\n').filter((l) => l && !l.startsWith('#'));
    assert.deepEqual(lines, [
      'pattern write devices/%u/announce', 'pattern write devices/%u/status', 'pattern write devices/%u/presence', 'pattern read devices/%u/command',
      'user grafana', 'topic read rollouts/#', 'topic read fleet/#', 'topic read devices/+/status',
      'user mqota', 'topic write devices/+/command', 'topic write rollouts/#', 'topic write fleet/#', 'topic read devices/+/announce', 'topic read devices/+/status', 'topic read devices/+/presence',
      'user mqota-2', 'topic write devices/+/command', 'topic write rollouts/#', 'topic write fleet/#', 'topic read devices/+/announce', 'topic read devices/+/status', 'topic read devices/+/presence',
      // A claim: its request topic, and the response topics of its claim (the broker cannot tell which device asks).
      'user claim-0a1b', 'topic write provision/claim-0a1b/request', 'topic read provision/claim-0a1b/response/+',
    ]);
  });

  test('the Mosquitto listener: mutual TLS with the device CA, the CN as username and client id, the CRL', () => {
    const conf = mosquittoConf({ kind: 'mosquitto', port: 8883, brokerDir: '/etc/mosquitto/mqota' });
    for (const line of ['allow_anonymous false', 'acl_file /etc/mosquitto/mqota/acl', 'listener 8883', 'cafile /etc/mosquitto/mqota/device-ca.crt',
      'certfile /etc/mosquitto/mqota/server.crt', 'keyfile /etc/mosquitto/mqota/server.key', 'crlfile /etc/mosquitto/mqota/crl.pem',
      'require_certificate true', 'use_identity_as_username true', 'use_username_as_clientid true', 'max_qos 1',
      'max_queued_messages 0', 'max_queued_bytes 0', 'max_inflight_messages 1000']) {
      assert.ok(conf.split('\n').includes(line), line);
    }
    // Listener options before the first `listener` would open Mosquitto's default listener on 1883.
    const body = conf.split('\n').filter((l) => l && !l.startsWith('#'));
    assert.ok(body.indexOf('max_qos 1') > body.indexOf('listener 8883'));
  });

  test('EMQX: one Erlang term per rule ending in a full stop, the same table, deny by default', () => {
    const rules = emqxAcl(state).split('\n').filter((l) => l && !l.startsWith('%%'));
    for (const rule of rules) assert.match(rule, /^\{(allow|deny), (all|\{clientid, "[A-Za-z0-9_.-]+"\})(, (publish|subscribe), \[("[^"\\]+"(, )?)+\])?\}\.$/, rule);
    assert.equal(rules[0], '{allow, all, publish, ["devices/${clientid}/announce", "devices/${clientid}/status", "devices/${clientid}/presence"]}.');
    assert.equal(rules[1], '{allow, all, subscribe, ["devices/${clientid}/command"]}.');
    assert.ok(rules.includes('{allow, {clientid, "grafana"}, subscribe, ["rollouts/#", "fleet/#", "devices/+/status"]}.'));
    assert.ok(!rules.some((r) => r.startsWith('{allow, {clientid, "grafana"}, publish')), 'a monitor publishes nothing');
    assert.ok(rules.includes('{allow, {clientid, "claim-0a1b"}, publish, ["provision/claim-0a1b/request"]}.'));
    assert.ok(rules.includes('{allow, {clientid, "claim-0a1b"}, subscribe, ["provision/claim-0a1b/response/+"]}.'));
    assert.equal(rules.at(-1), '{deny, all}.');
    const conf = emqxConf({ kind: 'emqx', port: 8883, brokerDir: '/opt/emqx/etc/mqota' });
    let depth = 0;
    for (const ch of conf.replace(/"[^"]*"/g, '""')) depth += ch === '{' ? 1 : ch === '}' ? -1 : 0;
    assert.equal(depth, 0, 'balanced braces');
    for (const s of ['max_mqueue_len = 10000000', 'max_inflight = 1000', 'peer_cert_as_clientid = cn', 'verify = verify_peer', 'fail_if_no_peer_cert = true', 'no_match = deny', 'path = "/opt/emqx/etc/mqota/acl.conf"']) assert.ok(conf.includes(s), s);
  });

  test('the CRL is signed by the device CA and lists the serials as OpenSSL reads them; the files are written with their modes', async () => {
    const pki = await createTestPki();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-broker-files-'));
    try {
      const crlFile = path.join(dir, 'check.pem');
      await writeFile(crlFile, await issueDeviceCrl(pki.paths, ['e33', '8abc']));
      const { stdout } = await run('openssl', ['crl', '-in', crlFile, '-CAfile', pki.paths.deviceCaCert, '-noout', '-text']);
      assert.match(stdout, /Serial Number: 0E33/);
      assert.match(stdout, /Serial Number: 8ABC\n/); // positive (OpenSSL prints a negative one with '-'): a high bit gets a 00 octet first
      const { stderr } = await run('openssl', ['crl', '-in', crlFile, '-CAfile', pki.paths.deviceCaCert, '-noout']);
      assert.match(stderr, /verify OK/);

      const files = await writeBrokerConfig(dir, { kind: 'mosquitto', port: 8883, brokerDir: dir }, pki.paths, state);
      assert.deepEqual(files.sort(), ['acl', 'crl.pem', 'device-ca.crt', 'mosquitto.conf', 'mqota-broker.json', 'server.crt', 'server.key']);
      assert.equal((await stat(path.join(dir, 'server.key'))).mode & 0o777, 0o600);
      assert.equal(await readFile(path.join(dir, 'server.crt'), 'utf8'), await readFile(pki.paths.serverCert, 'utf8'));
    } finally {
      await rm(dir, { recursive: true, force: true });
      await pki.cleanup();
    }
  });
});
