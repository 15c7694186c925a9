// Client certificates in the ledger and their revocation (devices and operators).
import { Type } from 'typebox';
import { DateTime, Nullable } from './common.js';

/** A client certificate in the ledger (src/auth/certificate-ledger.ts). */
export const CertificateView = Type.Object({
  serial: Type.String({ description: 'lower-case hex, no leading zeros' }),
  fingerprint: Nullable(Type.String({ description: 'SHA-256; null for a certificate revoked by serial only' })),
  notAfter: Nullable(DateTime), createdAt: DateTime,
  revokedAt: Nullable(DateTime), revokedBy: Nullable(Type.String()), reason: Nullable(Type.String()),
});

export const RevokeBody = Type.Object({
  serial: Type.Optional(Type.String({ pattern: '^[0-9A-Fa-f:]{1,59}$', description: 'one certificate (also one mqota did not issue); without it, every certificate on record' })),
  reason: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
}, { additionalProperties: false });

export const Revoked = Type.Object({
  revoked: Type.Array(CertificateView, { description: 'the certificates this call revoked' }),
  disconnected: Type.Boolean({ description: 'whether a live connection with one of them was closed' }),
});
