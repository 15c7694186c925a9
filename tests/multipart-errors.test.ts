// A malformed multipart upload is the client's error: 400 with a message that says what is wrong,
// never a 500, nothing in the catalog or the image folder, and the service goes on serving.
// The bodies are built by hand and sent over real HTTPS, since no well-behaved client sends them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { startTestServer, type TestServer } from './support/server.js';

type Answer = { status: number; body: { message?: string; [k: string]: unknown } };

describe('malformed multipart uploads', () => {
  let server: TestServer;
  const boundary = 'mqota-test-boundary';
  const field = (name: string, value: string) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const file = (name: string, bytes: string) =>
    `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${name}.bin"\r\nContent-Type: application/octet-stream\r\n\r\n${bytes}\r\n`;
  const end = `--${boundary}--\r\n`;

  /** POSTs `body` to /api/firmware with exactly these headers (and the token), over HTTPS. */
  function upload(body: string | Buffer, contentType: string): Promise<Answer> {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const { hostname, port } = new URL(server.mqota.publicUrl);
    return new Promise((resolve, reject) => {
      const req = https.request({
        host: hostname, port, method: 'POST', path: '/api/firmware', ca: server.pki.caPem, agent: false,
        headers: { authorization: `Bearer ${server.config.adminToken}`, 'content-type': contentType, 'content-length': bytes.length },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          try {
            resolve({ status: res.statusCode!, body: JSON.parse(text) });
          } catch {
            reject(new Error(`not JSON (${res.statusCode}): ${text}`));
          }
        });
      });
      req.on('error', reject);
      req.end(bytes);
    });
  }

  const imageFiles = () => readdir(path.join(server.dataDir, 'firmware'));

  before(async () => { server = await startTestServer(); });
  after(async () => { await server?.close(); });

  const cases: [string, () => Promise<Answer>, RegExp][] = [
    ['a body cut off inside the file part (no closing boundary)',
      () => upload(field('type', 'raw') + field('version', '1.0.0') + `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n\r\nsome bytes of an ima`, `multipart/form-data; boundary=${boundary}`),
      /cut off|incomplete|end/i],
    ['a body cut off inside a part\'s headers',
      () => upload(field('type', 'raw') + `--${boundary}\r\nContent-Disposition: form-da`, `multipart/form-data; boundary=${boundary}`),
      /cut off|incomplete|end/i],
    ['multipart/form-data without a boundary',
      () => upload(field('type', 'raw') + file('file', 'bytes') + end, 'multipart/form-data'),
      /boundary/i],
    ['a boundary longer than any parser takes',
      () => upload(field('type', 'raw').replaceAll(boundary, 'b'.repeat(300)), `multipart/form-data; boundary=${'b'.repeat(300)}`),
      /boundary/i],
    ['two files',
      () => upload(field('type', 'raw') + field('version', '1.0.1') + file('file', 'first image') + file('file2', 'second image') + end, `multipart/form-data; boundary=${boundary}`),
      /one file/i],
    ['two files in the same field',
      () => upload(field('type', 'raw') + field('version', '1.0.2') + file('file', 'first image') + file('file', 'second image') + end, `multipart/form-data; boundary=${boundary}`),
      /one file/i],
    ['a body that is no multipart at all',
      () => upload('just some bytes, no parts', `multipart/form-data; boundary=${boundary}`),
      /file|cut off|incomplete|end/i],
  ];

  for (const [name, send, message] of cases) {
    test(`${name}: 400 with a message, nothing kept`, async () => {
      const before = (await imageFiles()).sort();
      const res = await send();
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.match(res.body.message ?? '', message);
      assert.deepEqual((await imageFiles()).sort(), before);
      assert.deepEqual(await server.api.call('GET', '/api/firmware'), []);
    });
  }

  test('the service still serves: a well-formed upload after them is stored', async () => {
    const res = await upload(field('type', 'raw') + field('version', '2.0.0') + file('file', 'a good image') + end, `multipart/form-data; boundary=${boundary}`);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal((await server.api.call<{ version: string }[]>('GET', '/api/firmware')).map((f) => f.version).join(), '2.0.0');
    assert.equal((await imageFiles()).length, 1);
  });
});
