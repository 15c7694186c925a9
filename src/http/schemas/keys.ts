// Firmware signing keys (Secure Boot v2 public keys).
import { Type } from 'typebox';
import { DateTime, Nullable } from './common.js';

export const SigningKeyView = Type.Object({
  id: Type.String(), name: Type.String(),
  algorithm: Type.String({ enum: ['rsa3072-pss', 'ecdsa-p256'] }),
  keyDigest: Type.String({ description: 'SHA-256 of the public key as ESP-IDF digests it: the value burnt into eFuse with Secure Boot v2 (espsecure.py digest_sbv2_public_key)' }),
  publicKeyPem: Type.String(), createdAt: DateTime,
  retiredAt: Nullable(DateTime), retiredBy: Nullable(Type.String()), retireReason: Nullable(Type.String()),
});
export const SigningKeyCreateBody = Type.Object({
  publicKeyPem: Type.String({ minLength: 1, maxLength: 16384, description: 'PEM public key (a private key is accepted; only its public half is kept)' }),
  name: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' })),
}, { additionalProperties: false });
export const SigningKeyRetireBody = Type.Object({
  reason: Type.Optional(Type.String({ maxLength: 512 })),
}, { additionalProperties: false });
