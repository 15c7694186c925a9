// Payload signatures: HMAC-SHA256 over "<timestamp>.<body>" with the webhook's secret, sent as
// `X-Mqota-Signature: t=<unix seconds>,v1=<hex>`. The timestamp inside the signed text lets a
// receiver refuse replays (docs/webhooks.md says how to verify).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-mqota-signature';

export function sign(secret: string, timestampS: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestampS}.${body}`).digest('hex');
  return `t=${timestampS},v1=${mac}`;
}

/**
 * What a receiver does (used by the tests as a receiver would): the header parses, the MAC
 * matches in constant time, and the timestamp is within `toleranceS` of `nowS`.
 */
export function verify(secret: string, header: string | undefined, body: string, nowS: number, toleranceS = 300): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(nowS - t) > toleranceS) return false;
  const expected = Buffer.from(sign(secret, t, body).slice(`t=${t},v1=`.length), 'hex');
  return timingSafeEqual(expected, Buffer.from(m[2], 'hex'));
}

/** A secret for a webhook created without one: 32 random bytes, base64url. */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}
