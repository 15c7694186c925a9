// The audit log.
import { Type } from 'typebox';
import { DateTime, Nullable } from './common.js';

export const AuditQuery = Type.Object({
  actor: Type.Optional(Type.String({ maxLength: 64, description: 'token name' })),
  action: Type.Optional(Type.String({ maxLength: 200, description: 'prefix of `<METHOD> <route>`, e.g. `DELETE` or `POST /api/rollouts`' })),
  target: Type.Optional(Type.String({ maxLength: 200 })),
  since: Type.Optional(Type.String({ format: 'date-time' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
});
export const AuditEntryView = Type.Object({
  id: Type.Integer(), at: DateTime,
  actor: Type.String({ description: 'token name' }),
  action: Type.String({ description: '`<METHOD> <route pattern>`, e.g. `POST /api/rollouts/:id/cancel`' }),
  target: Nullable(Type.String({ description: 'the id or name the change was about' })),
  statusCode: Type.Integer({ description: 'the answer: 2xx done, 4xx refused' }),
  details: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'the request body without secrets (tokens, keys, certificates), or a multipart upload\'s form fields' })),
});
