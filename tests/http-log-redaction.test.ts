// A token given in a query string never reaches the log: the HTTP log lines of requests carrying
// `?token=…` (accepted, refused, unknown routes) are captured from pino and searched for it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { redactUrl } from '../src/http/log-serializers.js';
import { eventually } from './support/eventually.js';
import { startTestServer, type TestServer } from './support/server.js';

const SECRET = 'query-secret-4f1c9a7e2b6d8035';

describe('query-string credentials in the log', () => {
  let server: TestServer;
  let agent: Agent;
  const lines: string[] = [];

  before(async () => {
    // Access logs are at debug (src/http/app.ts).
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    server = await startTestServer({ logger });
    agent = new Agent({ connect: { ca: server.pki.caPem } });
  });
  after(async () => { await agent?.close(); await server?.close(); });

  test('requests with ?token= are logged with the parameter, never its value', async () => {
    const url = (p: string) => `${server.mqota.publicUrl}${p}`;
    const admin = { authorization: `Bearer ${server.config.adminToken}` };
    const sent: [string, Record<string, string>, number][] = [
      [`/api/firmware?token=${SECRET}`, admin, 200],
      [`/api/firmware?type=x&token=${SECRET}`, {}, 401], // refused: the auth plugin logs its URL
      [`/api/devices?%74oken=${SECRET}`, {}, 401], // percent-encoded name
      [`/healthz?access_token=${SECRET}`, {}, 200],
      [`/nowhere?TOKEN=${SECRET}`, {}, 404],
    ];
    const before = lines.length;
    for (const [path, headers, status] of sent) {
      const res = await request(url(path), { dispatcher: agent, headers });
      await res.body.dump();
      assert.equal(res.statusCode, status, path);
    }
    const logged = lines.slice(before).join('');
    // The positive control: the requests were logged, with their query strings.
    assert.match(logged, /"url":"\/api\/firmware\?token=\[redacted\]"/);
    assert.match(logged, /"url":"\/api\/firmware\?type=x&token=\[redacted\]".*API request without a valid token/);
    assert.match(logged, /"url":"\/healthz\?access_token=\[redacted\]"/);
    assert.ok(!logged.includes(SECRET), 'the secret is in the log');
    assert.ok(!lines.join('').includes(server.config.adminToken!), 'the admin token is in the log');
  });
});

test('access logs are at debug; info keeps the events', async () => {
  const lines: Record<string, any>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const server = await startTestServer({ logger });
  try {
    await server.api.call('GET', '/api/firmware');
    await server.api.call('POST', '/api/devices', { id: 'log-1', type: 'lg' });
    // The positive control: the event of the second request is at info.
    assert.ok(lines.some((l) => l.msg === 'device provisioned' && l.deviceId === 'log-1'), JSON.stringify(lines));
    assert.deepEqual(lines.filter((l) => l.component === 'http' && (l.req || l.res)).map((l) => l.msg), []);
  } finally {
    await server.close();
  }
});

test('the server starts without a Fastify deprecation warning (an operator reads them as faults)', async () => {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => void warnings.push(w);
  process.on('warning', onWarning);
  try {
    const server = await startTestServer({ logger: pino({ level: 'silent' }) });
    await server.close();
    // Warnings arrive on a later tick: a marker emitted after the server's start arrives after them.
    process.emitWarning('marker', { code: 'MQOTA_TEST_MARKER' });
    await eventually(() => warnings.some((w) => (w as NodeJS.ErrnoException).code === 'MQOTA_TEST_MARKER'), 30_000, 'the marker warning');
    assert.deepEqual(warnings.filter((w) => w.name === 'FastifyDeprecation').map((w) => w.message), []);
  } finally {
    process.off('warning', onWarning);
  }
});

test('redactUrl keeps everything but the values of secret parameters', () => {
  assert.equal(redactUrl('/a/b'), '/a/b');
  assert.equal(redactUrl('/a?x=1&token=s&y=2'), '/a?x=1&token=[redacted]&y=2');
  assert.equal(redactUrl('/a?Api_Key=s&password=p&keys=1'), '/a?Api_Key=[redacted]&password=[redacted]&keys=1');
  assert.equal(redactUrl('/a?%E0%A4%A=1&token'), '/a?%E0%A4%A=1&token=[redacted]');
});
