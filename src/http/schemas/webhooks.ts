// Webhooks: event receivers and their delivery logs.
import { Type } from 'typebox';
import { WEBHOOK_EVENTS, WEBHOOK_FORMATS } from '../../webhooks/events.js';
import { DateTime, Nullable } from './common.js';

export const WebhookParams = Type.Object({ id: Type.String({ pattern: '^wh_[A-Za-z0-9_-]{1,32}$' }) });
export const WebhookCreateBody = Type.Object({
  url: Type.String({ maxLength: 2048, description: 'https:// receiver (http:// and internal addresses only with MQOTA_WEBHOOK_ALLOW_HTTP / MQOTA_WEBHOOK_ALLOW_PRIVATE)' }),
  events: Type.Array(Type.Enum([...WEBHOOK_EVENTS]), { minItems: 1, description: 'what to send' }),
  format: Type.Optional(Type.Enum([...WEBHOOK_FORMATS], { description: 'json (default): {id, event, at, data}; slack: {"text": …} for a Slack-compatible incoming webhook' })),
  secret: Type.Optional(Type.String({ minLength: 16, maxLength: 256, description: 'HMAC-SHA256 key for X-Mqota-Signature; generated when left out' })),
}, { additionalProperties: false });
export const WebhookView = Type.Object({
  id: Type.String(), url: Type.String(), events: Type.Array(Type.String()), format: Type.String(), createdBy: Nullable(Type.String()), createdAt: DateTime,
});
export const WebhookCreated = Type.Object({
  ...WebhookView.properties,
  secret: Type.String({ description: 'the signing secret; shown in this answer only' }),
}, { description: 'the webhook was created' });
export const DeliveryQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })) });
export const DeliveryView = Type.Object({
  id: Type.String({ description: 'also the X-Mqota-Delivery header and the payload\'s id' }), event: Type.String(),
  state: Type.Enum(['pending', 'delivered', 'failed'], { description: 'pending: queued or waiting for a retry; failed: given up' }),
  attempts: Type.Integer(), nextAttemptAt: Nullable(DateTime), lastStatus: Nullable(Type.Integer()), lastError: Nullable(Type.String()),
  createdAt: DateTime, finishedAt: Nullable(DateTime),
  body: Type.String({ description: 'the exact body sent' }),
});
