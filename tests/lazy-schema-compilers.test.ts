// The lazy schema compilers: what warmUp() serializes to reach every anyOf branch, and that warm
// and cold routes answer the same as Fastify's own compilers would.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import { Type } from 'typebox';
import { exemplar, lazySchemaCompilers } from '../src/http/lazy-schema-compilers.js';
import { Nullable } from '../src/http/schemas/common.js';

const View = Type.Object({
  id: Type.String(), name: Nullable(Type.String()), at: Type.String({ format: 'date-time' }),
  waiting: Nullable(Type.Object({ wave: Type.Integer(), deadline: Nullable(Type.Integer()) })),
  devices: Type.Array(Type.Object({ state: Nullable(Type.String({ enum: ['accepted', 'failed'] })) })),
});

test('exemplar takes the last branch of every union, or the container one to reach the unions inside it', () => {
  assert.deepEqual(exemplar(View, 'last'), { id: '', name: null, at: new Date(0).toISOString(), waiting: null, devices: [{ state: null }] });
  assert.deepEqual(exemplar(View, 'container'), { id: '', name: null, at: new Date(0).toISOString(), waiting: { wave: 0, deadline: null }, devices: [{ state: null }] });
});

test('warm and cold routes validate and serialize as before, whether or not the warm-up has run', async () => {
  const schemas = lazySchemaCompilers((route) => route.url === '/warm');
  const app = Fastify({ schemaController: schemas.schemaController });
  const value = { id: 'ro_1', name: null, at: '2026-01-01T00:00:00.000Z', waiting: { wave: 1, deadline: null }, devices: [{ state: 'failed' }], extra: 'dropped' };
  for (const url of ['/warm', '/cold']) {
    app.post(url, { schema: { body: Type.Object({ n: Type.Integer() }), response: { 200: View } } }, async () => value);
  }
  await app.ready();
  let stop = () => {};
  await new Promise<void>((done) => { stop = schemas.warmUp(done); }); // every step of the warm route taken
  stop();
  for (const url of ['/warm', '/cold']) {
    const ok = await app.inject({ method: 'POST', url, payload: { n: 1 } });
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(ok.json(), { id: 'ro_1', name: null, at: '2026-01-01T00:00:00.000Z', waiting: { wave: 1, deadline: null }, devices: [{ state: 'failed' }] });
    const bad = await app.inject({ method: 'POST', url, payload: { n: 'x' } });
    assert.equal(bad.statusCode, 400);
  }
  await app.close();
});
