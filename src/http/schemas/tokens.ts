// Tokens and roles.
import { Type } from 'typebox';
import { ROLES } from '../../auth/roles.js';
import { DateTime, Nullable } from './common.js';

export const Role = Type.Enum([...ROLES], { description: 'viewer: read-only; operator: also firmware, rollouts, device provisioning and tagging; admin: also tokens and operator certificates' });
export const TokenName = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$', description: 'who the token is for; the audit log\'s actor' });
export const TokenParams = Type.Object({ name: TokenName });
export const TokenCreateBody = Type.Object({ name: TokenName, role: Role }, { additionalProperties: false });
export const TokenView = Type.Object({
  name: Type.String(), role: Role,
  builtIn: Type.Boolean({ description: 'the bootstrap admin token (MQOTA_ADMIN_TOKEN or <data>/admin-token)' }),
  createdAt: Nullable(DateTime), lastUsedAt: Nullable(DateTime),
});
export const TokenCreated = Type.Object({
  ...TokenView.properties,
  token: Type.String({ description: 'the bearer token; shown this once, only its SHA-256 is stored' }),
}, { description: 'the token was created' });
