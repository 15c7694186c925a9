// The firmware catalog.
import { Type } from 'typebox';
import { DateTime, FirmwareType, Nullable } from './common.js';

export const FirmwareListQuery = Type.Object({ type: Type.Optional(FirmwareType) });
export const FirmwareUploadForm = Type.Object({
  file: Type.String({ format: 'binary', description: 'the image (an ESP-IDF app image is identified from its header)' }),
  type: Type.Optional(FirmwareType),
  version: Type.Optional(Type.String({ description: 'semver; defaults to the image\'s version' })),
  channel: Type.Optional(Type.String({ pattern: '^[a-z0-9-]{1,32}$', default: 'stable' })),
  notes: Type.Optional(Type.String({ maxLength: 4096 })),
}, { additionalProperties: false });
export const FirmwareView = Type.Object({
  id: Type.String(), type: Type.String(), version: Type.String(), channel: Type.String(), notes: Nullable(Type.String()),
  sha256: Type.String(), size: Type.Integer(), url: Type.String({ description: 'the HTTPS link devices download' }), createdAt: DateTime,
  signedBy: Nullable(Type.Object({ id: Type.String(), name: Type.String(), retired: Type.Boolean() }, {
    description: 'the first registered key whose signature block verifies; null when none does',
  })),
  signatures: Type.Array(Type.Object({
    index: Type.Integer({ minimum: 0, maximum: 2 }), algorithm: Type.String({ enum: ['rsa3072-pss', 'ecdsa-p256'] }),
    keyDigest: Type.String({ description: 'SHA-256 of the key as ESP-IDF digests it (the eFuse key digest)' }),
    keyId: Nullable(Type.String()), keyName: Nullable(Type.String()), verified: Type.Boolean(),
  }), { description: 'the Secure Boot v2 signature blocks the image carries (empty: unsigned)' }),
  image: Nullable(Type.Object({
    chip: Nullable(Type.String()), projectName: Nullable(Type.String()), version: Nullable(Type.String()),
    idfVersion: Nullable(Type.String()), secureVersion: Nullable(Type.Integer()), buildId: Nullable(Type.String()),
  }, { description: 'what the ESP-IDF image header says; null when the file is not an ESP-IDF app image' })),
});
export const FirmwareUploaded = Type.Object({
  ...FirmwareView.properties,
  warnings: Type.Array(Type.String(), { description: 'what devices may object to: a catalog version that differs from the image\'s own, a missing or unverifiable signature' }),
});
