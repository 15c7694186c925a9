// The API's rate limit: an address sending bad tokens gets a small budget, then 429 with
// Retry-After; a valid token is keyed by its own hash and keeps working from the same address;
// a token's own budget ends in a 429 for it alone; /healthz, /metrics and image downloads are
// never limited. The window is long (10 minutes), so only the counts of requests decide.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { startTestServer, type TestServer } from './support/server.js';

const FAILED_AUTH_MAX = 5;
const TOKEN_MAX = 40;

describe('API rate limit', () => {
  let server: TestServer;
  let agent: Agent;
  const url = (p: string) => `${server.mqota.publicUrl}${p}`;
  async function get(path: string, token?: string) {
    const res = await request(url(path), { dispatcher: agent, headers: token ? { authorization: `Bearer ${token}` } : {} });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body: text };
  }

  before(async () => {
    server = await startTestServer({ env: {
      MQOTA_RATE_LIMIT_WINDOW_MS: String(10 * 60_000), MQOTA_RATE_LIMIT_FAILED_AUTH_MAX: String(FAILED_AUTH_MAX), MQOTA_RATE_LIMIT_TOKEN_MAX: String(TOKEN_MAX),
    } });
    agent = new Agent({ connect: { ca: server.pki.caPem } });
  });
  after(async () => { await agent?.close(); await server?.close(); });

  test('bad tokens from an address: 401 within the budget, then 429 with Retry-After; good tokens and /healthz still answer', async () => {
    for (let i = 0; i < FAILED_AUTH_MAX; i++) {
      const res = await get('/api/firmware', `bad-token-${i}-0123456789abcdef`);
      assert.equal(res.status, 401, `request ${i + 1} of the budget`);
    }
    for (const token of ['bad-token-x-0123456789abcdef', undefined]) {
      const res = await get('/api/devices', token);
      assert.equal(res.status, 429, res.body);
      assert.match(String(res.headers['retry-after']), /^[1-9][0-9]*$/);
      assert.match(JSON.parse(res.body).message, /rate limit/i);
    }
    // The admin token from the same address is keyed by its hash, not by the address.
    assert.equal((await get('/api/firmware', server.config.adminToken!)).status, 200);
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/metrics', server.config.adminToken!)).status, 200);
    // A bad token is never keyed by its own value: a new bad token does not get a fresh budget.
    assert.equal((await get('/api/firmware', 'yet-another-bad-token-0123456789')).status, 429);
  });

  test('a token over its own budget gets 429; other tokens do not', async () => {
    const { token } = await server.api.call<{ token: string }>('POST', '/api/tokens', { name: 'busy-script', role: 'viewer' });
    for (let i = 0; i < TOKEN_MAX; i++) assert.equal((await get('/api/whoami', token)).status, 200, `request ${i + 1} of the budget`);
    const over = await get('/api/whoami', token);
    assert.equal(over.status, 429);
    assert.match(String(over.headers['retry-after']), /^[1-9][0-9]*$/);
    assert.equal((await get('/api/whoami', server.config.adminToken!)).status, 200);
    assert.equal((await get('/healthz')).status, 200);
  });
});
