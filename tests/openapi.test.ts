// The OpenAPI document and the docs UI: served without a token and offline, a well-formed
// OpenAPI 3.1 document with the bearer scheme, every /api route of the app in it with the role it
// needs, the multipart upload's form, and response schemas that describe the real answers.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Agent, FormData, request } from 'undici';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { buildApp } from '../src/http/app.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

/** `METHOD /path/{param}` of every route in the router, from Fastify's printRoutes tree. */
function routerRoutes(tree: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:[│ ] {3})*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1].length / 4;
    stack[depth] = (depth ? stack[depth - 1] : '') + m[2];
    for (const method of (m[3] ?? '').split(', ').filter((x) => x && x !== 'HEAD')) {
      out.push(`${method} ${stack[depth].replace(/:(\w+)/g, '{$1}')}`);
    }
  }
  return out;
}

describe('OpenAPI document and /docs', () => {
  let server: TestServer;
  let agent: Agent;
  let doc: Json;
  const url = (p: string) => `${server.mqota.publicUrl}${p}`;
  const get = async (p: string, token?: string) => {
    const res = await request(url(p), { dispatcher: agent, headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: res.statusCode, type: String(res.headers['content-type']), text: await res.body.text() };
  };
  const ops = () => Object.entries(doc.paths as Record<string, Json>).flatMap(([p, item]) =>
    METHODS.filter((m) => item[m]).map((m) => ({ key: `${m.toUpperCase()} ${p}`, path: p, method: m, op: item[m] as Json })));

  before(async () => {
    server = await startTestServer();
    agent = new Agent({ connect: { ca: server.pki.caPem } });
    const res = await get('/docs/json');
    assert.equal(res.status, 200);
    doc = JSON.parse(res.text);
  });
  after(async () => { await agent?.close(); await server?.close(); });

  test('/docs serves the UI without a token, its assets from the package (no CDN)', async () => {
    const page = await get('/docs');
    assert.equal(page.status, 200);
    assert.match(page.type, /text\/html/);
    assert.match(page.text, /<title>mqota API<\/title>/);
    assert.match(page.text, /<div id="swagger-ui">/);
    const refs = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(refs.length >= 4, JSON.stringify(refs));
    assert.ok(refs.every((r) => r.startsWith('/docs/static/')), `external assets: ${JSON.stringify(refs)}`);

    const bundle = await get('/docs/static/swagger-ui-bundle.js');
    assert.equal(bundle.status, 200);
    assert.match(bundle.type, /javascript/);
    const pkgDir = path.dirname(createRequire(import.meta.url).resolve('@fastify/swagger-ui/package.json'));
    assert.equal(bundle.text, await readFile(path.join(pkgDir, 'static/swagger-ui-bundle.js'), 'utf8'));
    const init = await get('/docs/static/swagger-initializer.js');
    assert.equal(init.status, 200);
    assert.match(init.text, /resolveUrl\('\.\/json'\)/);
    assert.equal((await get('/docs/static/swagger-ui.css')).status, 200);

    const yaml = await get('/docs/yaml');
    assert.equal(yaml.status, 200);
    assert.match(yaml.text, /^openapi: 3\.1\.0$/m);
  });

  test('/docs/json is an OpenAPI 3.1 document with the bearer scheme on every /api operation', async () => {
    assert.equal(doc.openapi, '3.1.0');
    const pkg = JSON.parse(await readFile('package.json', 'utf8'));
    assert.equal(doc.info.title, 'mqota operator API');
    assert.equal(doc.info.version, pkg.version);
    assert.equal(doc.components.securitySchemes.bearerAuth.type, 'http');
    assert.equal(doc.components.securitySchemes.bearerAuth.scheme, 'bearer');
    assert.equal(doc.components.securitySchemes.deviceCertificate.type, 'mutualTLS');
    assert.equal(doc.security, undefined, 'security is per operation: /healthz needs none, images a device certificate or a token');

    const seen = new Set<string>();
    for (const { key, path: p, op } of ops()) {
      assert.ok(Object.keys(op.responses ?? {}).length, `${key}: no responses`);
      for (const [code, r] of Object.entries(op.responses as Record<string, Json>)) {
        assert.match(code, /^[1-5]\d\d$/, key);
        assert.ok(r.description, `${key} ${code}: no description`);
      }
      for (const name of [...p.matchAll(/\{(\w+)\}/g)].map((m) => m[1])) {
        assert.ok(op.parameters?.some((x: Json) => x.in === 'path' && x.name === name && x.required === true), `${key}: path parameter ${name} undeclared`);
      }
      if (op.operationId) { assert.ok(!seen.has(op.operationId), op.operationId); seen.add(op.operationId); }
      if (p.startsWith('/api/')) {
        assert.deepEqual(op.security, [{ bearerAuth: [] }], key);
        assert.ok(op.responses['401'], `${key}: no 401`);
        assert.match(op.responses['429']?.description ?? '', /Retry-After/, `${key}: no 429`);
        assert.match(op.description, /Needs the \*\*(viewer|operator|admin)\*\* role/, key);
        if (/^\/api\/(firmware|devices|tokens|audit|rollouts)/.test(p)) assert.ok(op.tags?.length, `${key}: untagged`);
      } else if (p === '/firmware/{name}') {
        assert.deepEqual(op.security, [{ deviceCertificate: [] }, { bearerAuth: [] }], key);
        assert.ok(op.responses['401'] && op.responses['403'], `${key}: no 401/403`);
      } else {
        assert.equal(op.security, undefined, key);
      }
    }
    assert.deepEqual(ops().filter((o) => !o.path.startsWith('/api/')).map((o) => o.key).sort(), ['GET /firmware/{name}', 'GET /healthz']);
    assert.ok(!ops().some((o) => o.path.startsWith('/docs')), 'the docs routes document themselves');
  });

  test('every schema in the document is valid JSON Schema 2020-12', () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats.default(ajv);
    let count = 0;
    for (const { key, op } of ops()) {
      const schemas = [
        ...(op.parameters ?? []).map((x: Json) => x.schema),
        ...Object.values(op.requestBody?.content ?? {}).map((c: any) => c.schema),
        ...Object.values(op.responses as Record<string, Json>).flatMap((r) => Object.values(r.content ?? {}).map((c: any) => c.schema)),
      ];
      for (const s of schemas) {
        assert.ok(s, `${key}: a parameter, body or response without a schema`);
        assert.doesNotThrow(() => ajv.compile(s), `${key}: ${JSON.stringify(s).slice(0, 200)}`);
        count++;
      }
    }
    assert.ok(count > 40, `only ${count} schemas`);
  });

  test('every /api route of the app is in the document, with the role it needs', async () => {
    const tls = { key: await readFile(server.pki.paths.serverKey, 'utf8'), cert: await readFile(server.pki.paths.serverCert, 'utf8'), clientCa: await readFile(server.pki.paths.deviceCaCert, 'utf8') };
    const app = await buildApp(server.mqota.services, tls);
    try {
      await app.ready();
      const routed = routerRoutes(app.printRoutes({ commonPrefix: false })).filter((r) => r.split(' ')[1].startsWith('/api/')).sort();
      assert.ok(routed.length >= 15, JSON.stringify(routed));
      assert.deepEqual(ops().filter((o) => o.path.startsWith('/api/')).map((o) => o.key).sort(), routed);
    } finally {
      await app.close();
    }
    const role = (key: string) => /Needs the \*\*(\w+)\*\* role/.exec(ops().find((o) => o.key === key)!.op.description)![1];
    assert.equal(role('GET /api/firmware'), 'viewer');
    assert.equal(role('POST /api/firmware'), 'operator');
    assert.equal(role('POST /api/rollouts'), 'operator');
    assert.equal(role('GET /api/audit'), 'viewer');
    for (const k of ['POST /api/tokens', 'GET /api/tokens', 'DELETE /api/tokens/{name}']) {
      assert.equal(role(k), 'admin', k);
      assert.ok(ops().find((o) => o.key === k)!.op.responses['403'], `${k}: no 403`);
    }
    assert.equal(ops().find((o) => o.key === 'GET /api/firmware')!.op.responses['403'], undefined, 'any token may read');
  });

  test('the firmware upload is documented as multipart/form-data with its file and fields', () => {
    const op = doc.paths['/api/firmware'].post;
    assert.deepEqual(Object.keys(op.requestBody.content), ['multipart/form-data']);
    const form = op.requestBody.content['multipart/form-data'].schema;
    assert.deepEqual(Object.keys(form.properties).sort(), ['channel', 'file', 'notes', 'type', 'version']);
    assert.equal(form.properties.file.type, 'string');
    assert.equal(form.properties.file.format, 'binary');
    assert.deepEqual(form.required, ['file']);
    assert.deepEqual(Object.keys(op.responses).sort(), ['201', '400', '401', '403', '409', '413', '415', '429', '507']);
    assert.deepEqual(Object.keys(doc.paths['/firmware/{name}'].get.responses['200'].content), ['application/octet-stream']);
  });

  test('the documented response schemas describe the real answers', async () => {
    const admin = server.config.adminToken!;
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats.default(ajv);
    const check = (key: string, status: number, body: unknown) => {
      const op = ops().find((o) => o.key === key);
      assert.ok(op, key);
      const schema = op.op.responses[String(status)]?.content?.['application/json']?.schema;
      assert.ok(schema, `${key} ${status}: undocumented`);
      const validate = ajv.compile(schema);
      assert.ok(validate(body), `${key} ${status}: ${JSON.stringify(validate.errors)} in ${JSON.stringify(body).slice(0, 300)}`);
    };
    const send = async (method: string, p: string, body?: unknown, token = admin) => {
      const res = await request(url(p), {
        method: method as 'POST', dispatcher: agent, body: body instanceof FormData ? body : body === undefined ? undefined : JSON.stringify(body),
        headers: { authorization: `Bearer ${token}`, ...(body === undefined || body instanceof FormData ? {} : { 'content-type': 'application/json' }) },
      });
      return { status: res.statusCode, body: await res.body.json() as Json };
    };

    const form = new FormData();
    form.set('file', new Blob([new Uint8Array(buildEspAppImage({ projectName: 'fan', version: '1.0.1', idfVersion: 'v5.3.1' }))]), 'fan.bin');
    const fw = await send('POST', '/api/firmware', form);
    assert.equal(fw.status, 201);
    check('POST /api/firmware', 201, fw.body);
    const raw = new FormData();
    raw.set('type', 'blob');
    raw.set('version', '0.1.0');
    raw.set('file', new Blob([new Uint8Array(Buffer.from('not an image'))]), 'blob.bin');
    const plain = await send('POST', '/api/firmware', raw);
    assert.equal(plain.body.image, null);
    check('POST /api/firmware', 201, plain.body);
    const dev = await send('POST', '/api/devices', { id: 'fan-1', type: 'fan' });
    check('POST /api/devices', 201, dev.body);
    const tok = await send('POST', '/api/tokens', { name: 'reader', role: 'viewer' });
    check('POST /api/tokens', 201, tok.body);
    check('POST /api/tokens', 409, (await send('POST', '/api/tokens', { name: 'reader', role: 'viewer' })).body);
    check('POST /api/firmware', 403, (await send('POST', '/api/firmware', new FormData(), tok.body.token)).body);

    for (const [key, p] of [
      ['GET /api/firmware', '/api/firmware'], ['GET /api/firmware/{id}', `/api/firmware/${fw.body.id}`],
      ['GET /api/devices', '/api/devices'], ['GET /api/devices/{id}', '/api/devices/fan-1'],
      ['GET /api/tokens', '/api/tokens'], ['GET /api/audit', '/api/audit'], ['GET /healthz', '/healthz'],
    ]) {
      const res = await send('GET', p);
      assert.equal(res.status, 200, `${p}: ${JSON.stringify(res.body)}`);
      check(key, 200, res.body);
    }
    check('GET /api/firmware/{id}', 404, (await send('GET', '/api/firmware/fw_missing')).body);
    check('GET /api/firmware', 401, (await send('GET', '/api/firmware', undefined, 'nope-nope-nope-nope')).body);
  });
});
