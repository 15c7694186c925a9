// A small client of the operator API over HTTPS, verifying the server with the mqota CA.
// Used by the CLI and the tests.

import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Agent, FormData, request } from 'undici';
import { openAsBlob } from 'node:fs';

export class ApiError extends Error {
  constructor(readonly statusCode: number, message: string, readonly body: unknown) { super(message); }
}

export interface ApiClientOptions { baseUrl: string; token: string; caPem: string }

export class ApiClient {
  private readonly dispatcher: Agent;

  constructor(private readonly opts: ApiClientOptions) {
    this.dispatcher = new Agent({ connect: { ca: opts.caPem } });
  }

  async call<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', urlPath: string, body?: unknown): Promise<T> {
    const res = await request(new URL(urlPath, this.opts.baseUrl), {
      method, dispatcher: this.dispatcher,
      headers: { authorization: `Bearer ${this.opts.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return this.parse<T>(res.statusCode, await res.body.text());
  }

  /** Streams a firmware file to POST /api/firmware. */
  async uploadFirmware<T = unknown>(file: string, fields: Record<string, string | undefined>): Promise<T> {
    await stat(file);
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) form.set(k, v);
    form.set('file', await openAsBlob(file), path.basename(file));
    const res = await request(new URL('/api/firmware', this.opts.baseUrl), {
      method: 'POST', dispatcher: this.dispatcher, headers: { authorization: `Bearer ${this.opts.token}` }, body: form,
    });
    return this.parse<T>(res.statusCode, await res.body.text());
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

