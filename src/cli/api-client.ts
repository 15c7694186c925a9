// A small client of the operator API over HTTPS, verifying the server with the mqota CA.
// Used by the CLI and the tests.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';

export class ApiError extends Error {
  constructor(readonly statusCode: number, message: string, readonly body: unknown) { super(message); }
}

export interface ApiClientOptions { baseUrl: string; token: string; caPem?: string }

export class ApiClient {
  private readonly dispatcher: Agent;

  constructor(private readonly opts: ApiClientOptions) {
    this.dispatcher = new Agent({ connect: { ca: opts.caPem } });
  }

  async call<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', urlPath: string, body?: unknown): Promise<T> {
    const res = await request(new URL(urlPath, this.opts.baseUrl), {
      method, dispatcher: this.dispatcher,
      headers: { authorization: `Bearer ${this.opts.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return this.parse<T>(res.statusCode, await res.body.text());
  }

  /** Streams a firmware file to POST /api/firmware as multipart, reporting bytes sent. */
  async uploadFirmware<T = unknown>(file: string, fields: Record<string, string | undefined>, onProgress?: (sent: number, total: number) => void): Promise<T> {
    const { size } = await stat(file);
    const boundary = `mqota-${randomBytes(12).toString('hex')}`;
    const head = Object.entries(fields).filter(([, v]) => v !== undefined)
      .map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`).join('')
      + `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${path.basename(file).replace(/"/g, '')}"\r\nContent-Type: application/octet-stream\r\n\r\n`;
    const tail = `\r\n--${boundary}--\r\n`;
    async function* body() {
      yield Buffer.from(head);
      let sent = 0;
      for await (const chunk of createReadStream(file)) {
        sent += (chunk as Buffer).length;
        onProgress?.(sent, size);
        yield chunk as Buffer;
      }
      yield Buffer.from(tail);
    }
    const res = await request(new URL('/api/firmware', this.opts.baseUrl), {
      method: 'POST', dispatcher: this.dispatcher, body: Readable.from(body()),
      headers: {
        authorization: `Bearer ${this.opts.token}`, 'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': String(Buffer.byteLength(head) + size + Buffer.byteLength(tail)),
      },
    });
    return this.parse<T>(res.statusCode, await res.body.text());
  }

  /** Reads a server-sent event stream until `signal` aborts or the server closes it. */
  async events(urlPath: string, onEvent: (type: string, data: unknown) => void, signal: AbortSignal): Promise<void> {
    const res = await request(new URL(urlPath, this.opts.baseUrl), {
      dispatcher: this.dispatcher, signal, headers: { authorization: `Bearer ${this.opts.token}`, accept: 'text/event-stream' },
    });
    if (res.statusCode >= 400) this.parse(res.statusCode, await res.body.text());
    let buffer = '';
    try {
      for await (const chunk of res.body) {
        buffer += chunk.toString();
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let type = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) type = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
          }
          if (data.length) onEvent(type, JSON.parse(data.join('\n')));
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private parse<T>(status: number, text: string): T {
    let json: unknown = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = text; }
    if (status >= 400) {
      const message = (json as { message?: string } | null)?.message ?? `HTTP ${status}`;
      throw new ApiError(status, message, json);
    }
    return json as T;
  }
}

