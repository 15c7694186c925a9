// API tokens with roles and the audit log, over HTTPS: what each role may do, revocation, what is
// stored (hashes only), what the audit log records (and never records), and the CLI.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { Agent, FormData, request } from 'undici';
import { sanitise } from '../src/auth/audit-log.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;
const run = promisify(execFile);
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe('API tokens, roles and the audit log', () => {
  let server: TestServer;
  let agent: Agent;
  const admin = () => server.config.adminToken!;
  const tokens: Record<string, string> = {};

  async function call(token: string, method: string, urlPath: string, body?: unknown) {
    const res = await request(`${server.mqota.publicUrl}${urlPath}`, {
      method: method as 'GET', dispatcher: agent,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, body: (text ? JSON.parse(text) : null) as any };
  }

  async function upload(token: string, version: string) {
    const form = new FormData();
    form.set('notes', 'nightly');
    form.set('file', new Blob([new Uint8Array(buildEspAppImage({ projectName: 'lamp', version }))]), 'lamp.bin');
    const res = await request(`${server.mqota.publicUrl}/api/firmware`, { method: 'POST', dispatcher: agent, headers: { authorization: `Bearer ${token}` }, body: form });
    return { status: res.statusCode, body: await res.body.json() as Json };
  }

  const audit = async (query = '') => (await call(admin(), 'GET', `/api/audit${query}`)).body as Json[];
  const prisma = () => server.mqota.services.db.prisma;

  before(async () => {
    server = await startTestServer();
    agent = new Agent({ connect: { ca: server.pki.caPem } });
  });
  after(async () => { await agent?.close(); await server?.close(); });

  test('an admin creates tokens; each is returned once and stored only as its SHA-256', async () => {
    for (const [name, role] of [['ci-viewer', 'viewer'], ['ops', 'operator'], ['root2', 'admin']] as const) {
      const res = await call(admin(), 'POST', '/api/tokens', { name, role });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.name, name);
      assert.equal(res.body.role, role);
      assert.equal(res.body.builtIn, false);
      assert.match(res.body.token, /^mqota_[A-Za-z0-9_-]{43}$/);
      tokens[name] = res.body.token;

      const row = await prisma().apiToken.findUniqueOrThrow({ where: { name } });
      assert.equal(row.role, role);
      assert.equal(row.tokenHash, sha256(res.body.token));
      assert.ok(!JSON.stringify(row).includes(res.body.token), 'the row holds the token itself');
      assert.equal(row.revokedAt, null);
    }
    assert.equal(new Set(Object.values(tokens)).size, 3);

    const dup = await call(admin(), 'POST', '/api/tokens', { name: 'ops', role: 'viewer' });
    assert.equal(dup.status, 409);
    assert.match(dup.body.message, /ops/);
    const builtIn = await call(admin(), 'POST', '/api/tokens', { name: 'admin', role: 'viewer' });
    assert.equal(builtIn.status, 409);
    for (const body of [{ name: 'x', role: 'root' }, { name: '../x', role: 'viewer' }, { name: 'x' }, { role: 'viewer', token: 'mine' }]) {
      assert.equal((await call(admin(), 'POST', '/api/tokens', body)).status, 400, JSON.stringify(body));
    }
  });

  test('the token list shows names, roles and use, never a secret', async () => {
    const usedFrom = Date.now();
    await call(tokens['ci-viewer'], 'GET', '/api/firmware');
    const res = await call(admin(), 'GET', '/api/tokens');
    const listedBy = Date.now();
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.map((t: Json) => [t.name, t.role, t.builtIn]), [
      ['admin', 'admin', true], ['ci-viewer', 'viewer', false], ['ops', 'operator', false], ['root2', 'admin', false],
    ]);
    for (const t of res.body) assert.deepEqual(Object.keys(t).sort(), ['builtIn', 'createdAt', 'lastUsedAt', 'name', 'role']);
    const text = JSON.stringify(res.body);
    for (const secret of [admin(), ...Object.values(tokens)]) {
      assert.ok(!text.includes(secret), 'a token appears in the list');
      assert.ok(!text.includes(sha256(secret)), 'a token hash appears in the list');
    }
    const viewer = res.body.find((t: Json) => t.name === 'ci-viewer');
    // The use just made, whatever the time it took (the server and the test share a clock).
    assert.ok(Date.parse(viewer.lastUsedAt) >= usedFrom && Date.parse(viewer.lastUsedAt) <= listedBy, `lastUsedAt ${viewer.lastUsedAt}`);
    assert.equal(res.body.find((t: Json) => t.name === 'ops').lastUsedAt, null);
    assert.ok(Date.parse(viewer.createdAt) <= Date.now());
  });

  test('a viewer reads everything and changes nothing', async () => {
    const v = tokens['ci-viewer'];
    for (const p of ['/api/firmware', '/api/devices', '/api/rollouts', '/api/audit']) {
      const res = await call(v, 'GET', p);
      assert.equal(res.status, 200, `${p}: ${JSON.stringify(res.body)}`);
      assert.ok(Array.isArray(res.body));
    }
    const filesBefore = await readdir(path.join(server.dataDir, 'firmware'));
    const up = await upload(v, '1.0.0');
    assert.equal(up.status, 403);
    assert.match(up.body.message, /ci-viewer.*viewer.*POST \/api\/firmware.*operator/);
    assert.deepEqual(await readdir(path.join(server.dataDir, 'firmware')), filesBefore, 'a refused upload left a file');
    assert.deepEqual((await call(admin(), 'GET', '/api/firmware')).body, []);

    const ro = await call(v, 'POST', '/api/rollouts', { firmwareId: 'fw_nothing' });
    assert.equal(ro.status, 403);
    assert.equal(ro.body.error, 'Forbidden');
    assert.match(ro.body.message, /needs operator/);
    assert.equal((await call(v, 'POST', '/api/devices', { id: 'lamp-9', type: 'lamp' })).status, 403);
    assert.equal(server.mqota.services.registry.get('lamp-9'), undefined);

    const tok = await call(v, 'POST', '/api/tokens', { name: 'sneaky', role: 'admin' });
    assert.equal(tok.status, 403);
    assert.match(tok.body.message, /needs admin/);
    assert.equal(await prisma().apiToken.findUnique({ where: { name: 'sneaky' } }), null);
    assert.equal((await call(v, 'GET', '/api/tokens')).status, 403);
    assert.deepEqual((await call(v, 'GET', '/api/whoami')).body, { name: 'ci-viewer', role: 'viewer' });
    assert.deepEqual((await call(admin(), 'GET', '/api/whoami')).body, { name: 'admin', role: 'admin' });
  });

  test('an operator uploads, provisions and rolls out, but cannot manage tokens', async () => {
    const o = tokens.ops;
    const fw = await upload(o, '2.0.0');
    assert.equal(fw.status, 201, JSON.stringify(fw.body));
    assert.equal(fw.body.type, 'lamp');
    const dev = await call(o, 'POST', '/api/devices', { id: 'lamp-1', type: 'lamp' });
    assert.equal(dev.status, 201, JSON.stringify(dev.body));
    assert.match(dev.body.bundle.keyPem, /BEGIN PRIVATE KEY/);
    const ro = await call(o, 'POST', '/api/rollouts', { firmwareId: fw.body.id });
    assert.equal(ro.status, 201, JSON.stringify(ro.body));
    assert.equal(ro.body.createdBy, 'ops');

    assert.equal((await call(o, 'POST', '/api/tokens', { name: 'more', role: 'viewer' })).status, 403);
    assert.equal((await call(o, 'GET', '/api/tokens')).status, 403);
    assert.equal((await call(o, 'DELETE', '/api/tokens/ci-viewer')).status, 403);
    // A viewer may not delete what the operator made.
    const del = await call(tokens['ci-viewer'], 'DELETE', `/api/firmware/${fw.body.id}`);
    assert.equal(del.status, 403);
    assert.ok(server.mqota.services.catalog.get(fw.body.id));
    // An admin token made through the API can do what the built-in one does.
    assert.equal((await call(tokens.root2, 'GET', '/api/tokens')).status, 200);
  });

  test('the audit log says who did what to which target, done or refused, without secrets', async () => {
    const entries = await audit('?limit=1000');
    const fw = (await call(admin(), 'GET', '/api/firmware')).body[0];
    const rollout = (await call(admin(), 'GET', '/api/rollouts')).body[0];
    const find = (actor: string, action: string, statusCode: number) => {
      const e = entries.find((x) => x.actor === actor && x.action === action && x.statusCode === statusCode);
      assert.ok(e, `no audit entry ${actor} ${action} ${statusCode} in ${JSON.stringify(entries.map((x) => [x.actor, x.action, x.statusCode]))}`);
      return e;
    };

    const upload201 = find('ops', 'POST /api/firmware', 201);
    assert.equal(upload201.target, fw.id);
    assert.deepEqual(upload201.details, { notes: 'nightly' });
    const rollout201 = find('ops', 'POST /api/rollouts', 201);
    assert.equal(rollout201.target, rollout.id);
    assert.deepEqual(rollout201.details, { firmwareId: fw.id });
    const device201 = find('ops', 'POST /api/devices', 201);
    assert.equal(device201.target, 'lamp-1');
    assert.deepEqual(device201.details, { id: 'lamp-1', type: 'lamp' });
    const tokenCreated = find('admin', 'POST /api/tokens', 201);
    assert.ok(entries.some((e) => e.action === 'POST /api/tokens' && e.target === 'ops' && e.statusCode === 201 && e.details.role === 'operator'));
    assert.equal(tokenCreated.actor, 'admin');

    // Refused attempts: the role check comes before the body is read, so the target is the one in the path, if any.
    const refusedRollout = find('ci-viewer', 'POST /api/rollouts', 403);
    assert.equal(refusedRollout.target, null);
    assert.equal(find('ci-viewer', 'POST /api/firmware', 403).target, null);
    assert.equal(find('ci-viewer', 'POST /api/tokens', 403).actor, 'ci-viewer');
    assert.equal(find('ci-viewer', `DELETE /api/firmware/:id`, 403).target, fw.id);
    assert.equal(find('ops', 'DELETE /api/tokens/:name', 403).target, 'ci-viewer');
    assert.ok(entries.some((e) => e.actor === 'admin' && e.action === 'POST /api/tokens' && e.statusCode === 409 && e.target === 'ops'));
    assert.ok(entries.some((e) => e.action === 'POST /api/tokens' && e.statusCode === 400 && e.details?.name === '../x'));

    assert.ok(!entries.some((e) => e.action.startsWith('GET ')), 'reads are not audited');
    const text = JSON.stringify(entries);
    for (const secret of [admin(), ...Object.values(tokens)]) assert.ok(!text.includes(secret), 'a token is in the audit log');
    assert.ok(!text.includes('BEGIN'), 'a key or certificate is in the audit log');
    for (let i = 1; i < entries.length; i++) assert.ok(entries[i - 1].at >= entries[i].at, 'newest first');

    // The table holds the same.
    const rows = await prisma().auditEntry.findMany();
    assert.equal(rows.length, entries.length);
    assert.ok(!JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? String(v) : v)).includes(tokens.ops));
  });

  test('the audit log filters by actor, action prefix, target, time and count', async () => {
    const byOps = await audit('?actor=ops');
    assert.ok(byOps.length >= 4);
    assert.ok(byOps.every((e) => e.actor === 'ops'));
    const deletes = await audit('?action=DELETE');
    assert.ok(deletes.length >= 2);
    assert.ok(deletes.every((e) => e.action.startsWith('DELETE ')));
    const tokenPosts = await audit(`?action=${encodeURIComponent('POST /api/tokens')}&target=ops`);
    assert.deepEqual(tokenPosts.map((e) => e.statusCode).sort(), [201, 409]);
    assert.equal((await audit('?limit=2')).length, 2);
    const now = new Date().toISOString();
    assert.deepEqual(await audit(`?since=${encodeURIComponent(now)}`), []);
    const all = await audit('?limit=1000');
    const oldest = all[all.length - 1].at;
    assert.equal((await audit(`?since=${encodeURIComponent(oldest)}&limit=1000`)).length, all.length);
    for (const q of ['?limit=1001', '?limit=0', '?since=yesterday']) assert.equal((await call(admin(), 'GET', `/api/audit${q}`)).status, 400, q);
  });

  test('a revoked token is refused at once; the name can be used again', async () => {
    const old = tokens['ci-viewer'];
    assert.equal((await call(tokens.ops, 'GET', '/api/firmware')).status, 200);
    const res = await call(admin(), 'DELETE', '/api/tokens/ci-viewer');
    assert.equal(res.status, 204);
    const after = await call(old, 'GET', '/api/firmware');
    assert.equal(after.status, 401);
    assert.match(after.body.message, /Bearer/);
    const row = await prisma().apiToken.findUniqueOrThrow({ where: { name: 'ci-viewer' } });
    assert.ok(row.revokedAt instanceof Date);
    assert.ok(!(await call(admin(), 'GET', '/api/tokens')).body.some((t: Json) => t.name === 'ci-viewer'));
    assert.equal((await call(admin(), 'DELETE', '/api/tokens/ci-viewer')).status, 404);
    const builtIn = await call(admin(), 'DELETE', '/api/tokens/admin');
    assert.equal(builtIn.status, 409);
    assert.match(builtIn.body.message, /MQOTA_ADMIN_TOKEN/);

    const again = await call(admin(), 'POST', '/api/tokens', { name: 'ci-viewer', role: 'viewer' });
    assert.equal(again.status, 201);
    assert.notEqual(again.body.token, old);
    tokens['ci-viewer'] = again.body.token;
    assert.equal((await call(again.body.token, 'GET', '/api/firmware')).status, 200);
    assert.equal((await call(old, 'GET', '/api/firmware')).status, 401);
    assert.equal(await prisma().apiToken.count({ where: { name: 'ci-viewer' } }), 1);
    assert.ok(!(await audit('?action=GET')).length);
  });

  test('tokens and their last use survive a restart; the bootstrap token stays the built-in admin', async () => {
    const before = (await call(admin(), 'GET', '/api/tokens')).body as Json[];
    const opsUsed = before.find((t) => t.name === 'ops')!.lastUsedAt;
    assert.ok(opsUsed);
    await server.restart();
    const listed = (await call(admin(), 'GET', '/api/tokens')).body as Json[];
    assert.deepEqual(listed.map((t) => t.name), ['admin', 'ci-viewer', 'ops', 'root2']);
    const row = await prisma().apiToken.findUniqueOrThrow({ where: { name: 'ops' } });
    assert.equal(row.lastUsedAt?.toISOString(), opsUsed, 'lastUsedAt was written at shutdown');
    assert.equal((await call(tokens.ops, 'GET', '/api/devices')).status, 200);
    assert.equal((await call(tokens['ci-viewer'], 'POST', '/api/devices', { id: 'lamp-2', type: 'lamp' })).status, 403);
  });

  test('mqota token create prints a token that works with its role; list and revoke', async () => {
    // The sources, not bin/mqota.js: that one prefers a compiled dist/ when there is one.
    const cli = ['--import', 'tsx', path.resolve('src/cli/main.ts')];
    const base = [...cli, '--server', server.mqota.publicUrl, '--token', admin(), '--ca', server.pki.paths.caCert, 'token'];
    const { stdout, stderr } = await run(process.execPath, [...base, 'create', 'ci', '--role', 'viewer']);
    const token = stdout.trim();
    assert.match(token, /^mqota_[A-Za-z0-9_-]{43}$/);
    assert.match(stderr, /ci \(viewer\) created/);
    assert.equal((await call(token, 'GET', '/api/firmware')).status, 200);
    assert.equal((await call(token, 'POST', '/api/rollouts', { firmwareId: 'fw_x' })).status, 403);

    const listed = JSON.parse((await run(process.execPath, [...cli, '--json', ...base.slice(cli.length), 'list'])).stdout) as Json[];
    assert.deepEqual(listed.find((t) => t.name === 'ci'), { ...listed.find((t) => t.name === 'ci'), role: 'viewer', builtIn: false });
    assert.ok(!JSON.stringify(listed).includes(token));
    const table = (await run(process.execPath, [...base, 'list'])).stdout;
    assert.match(table, /^ci\s+viewer\s+false\s/m);

    await run(process.execPath, [...base, 'revoke', 'ci']);
    assert.equal((await call(token, 'GET', '/api/firmware')).status, 401);
    await assert.rejects(run(process.execPath, [...base, 'create', 'x', '--role', 'root']), (e: any) => /root/.test(e.stderr));
    await assert.rejects(run(process.execPath, [...cli, '--server', server.mqota.publicUrl, '--token', tokens.ops, '--ca', server.pki.paths.caCert, 'token', 'create', 'y']),
      (e: any) => /needs admin \(HTTP 403\)/.test(e.stderr));
  });

  test('audit details never keep secrets: fields named like one, PEM blocks; long lists are cut', () => {
    const body = {
      name: 'n', token: 'mqota_x', apiKey: 'k', keyPem: 'p', password: 'pw', nested: { clientSecret: 's', certPem: 'c', ok: 1 },
      note: '-----BEGIN PRIVATE KEY-----\nabc', deviceIds: Array.from({ length: 25 }, (_, i) => `d${i}`), long: 'x'.repeat(300),
    };
    const out = sanitise(body) as Json;
    assert.deepEqual({ ...out, deviceIds: undefined, long: undefined }, {
      name: 'n', token: '[redacted]', apiKey: '[redacted]', keyPem: '[redacted]', password: '[redacted]',
      nested: { clientSecret: '[redacted]', certPem: '[redacted]', ok: 1 }, note: '[redacted]', deviceIds: undefined, long: undefined,
    });
    assert.deepEqual(out.deviceIds, [...body.deviceIds.slice(0, 20), '… 5 more']);
    assert.equal(out.long.length, 201);
  });
});
