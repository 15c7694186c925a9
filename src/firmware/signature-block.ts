// ESP-IDF Secure Boot v2 signature blocks: reading, verifying and writing them, byte for byte as
// `espsecure.py sign_data --version 2` does, so that an image signed here boots on a chip with
// Secure Boot v2 and an image signed by espsecure is read here.
//
// Format, from espressif/esptool (espsecure/__init__.py: sign_secure_boot_v2,
// generate_signature_block_using_private_key, generate_rsa_signature_block,
// generate_ecdsa_signature_block, verify_signature_v2) and espressif/esp-idf
// (components/esp_rom/<chip>/include/<chip>/rom/secure_boot.h: ets_secure_boot_sig_block_t;
// components/bootloader_support/src/secure_boot_v2/secure_boot_signatures_app.c):
//
// - The signed data is the image padded with 0xFF to a multiple of 4096 bytes; the signature
//   sector (4096 bytes) follows it: up to three 1216-byte blocks, then 0xFF.
// - Block: magic 0xE7, version (2 = RSA-3072-PSS, 3 = ECDSA), a byte (ECDSA: 0 = SHA-256),
//   a reserved byte, the SHA-256 of the signed data (32), then
//     RSA:   n (384, little-endian), e (uint32 LE), rinv = 2^(2*3072) mod n (384, LE),
//            m' = -n^-1 mod 2^32 (uint32 LE), the PSS signature (384, LE; MGF1-SHA256, salt 32)
//     ECDSA: curve id (1 = P-192, 2 = P-256), the point X‖Y (32 + 32, each LE),
//            r‖s (32 + 32, each LE), zero padding to byte 1196
//   then the CRC-32 (zlib, LE) of bytes 0..1195, then 16 zero bytes.
// - The key digest the chip trusts (burnt into eFuse with Secure Boot v2, or taken from the
//   running app's first block without it) is the SHA-256 of the block's key part: bytes 36..811
//   (n, e, rinv, m') for RSA, bytes 36..100 (curve id and point) for ECDSA P-256.
import { createHash, createPublicKey, createVerify, sign as cryptoSign, constants, type KeyObject } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const SECTOR_BYTES = 4096;
export const SIG_BLOCK_BYTES = 1216;
export const MAX_SIG_BLOCKS = 3;
const SIG_BLOCK_MAGIC = 0xe7;
const VERSION_RSA = 0x02;
const VERSION_ECDSA = 0x03;
const ECDSA_SHA_256 = 0x00;
const CURVE_P256 = 2;
const CRC_COVERED_BYTES = 1196;
const RSA_KEY_BYTES = 384;
const RSA_KEY_PART = [36, 36 + RSA_KEY_BYTES + 4 + RSA_KEY_BYTES + 4] as const; // n, e, rinv, m'
const RSA_SIGNATURE_AT = RSA_KEY_PART[1];
const ECDSA_KEY_PART = [36, 36 + 1 + 64] as const; // curve id, X, Y
const ECDSA_SIGNATURE_AT = ECDSA_KEY_PART[1];

export type SigningAlgorithm = 'rsa3072-pss' | 'ecdsa-p256';
export const SIGNING_ALGORITHMS: readonly SigningAlgorithm[] = ['rsa3072-pss', 'ecdsa-p256'];

/** One valid-looking block of a signature sector (magic and CRC right); not yet verified. */
export interface SignatureBlock {
  index: number;
  algorithm: SigningAlgorithm;
  /** SHA-256 of the block's key part, lowercase hex: what ESP-IDF compares with trusted key digests. */
  keyDigest: string;
  /** The image digest the block claims. */
  imageDigest: Buffer;
  /** The public key carried in the block. */
  publicKey: KeyObject;
  /** The signature in the form node:crypto verifies (big-endian RSA; ECDSA r‖s big-endian). */
  signature: Buffer;
}

export interface SignatureSector {
  /** Bytes covered by the signatures: the image and its 0xFF padding to a sector boundary. */
  signedLength: number;
  blocks: SignatureBlock[];
}

export class SignatureFormatError extends Error {}

/**
 * The signature sector at the end of `image`, or null when the image carries none (its length is
 * not a multiple of 4096, or its last sector's first block has a wrong magic or CRC). Blocks after
 * the first invalid one are ignored, as espsecure and ESP-IDF do. Never throws.
 */
export function readSignatureSector(image: Buffer): SignatureSector | null {
  if (!hasSignatureSectorLength(image.length)) return null;
  return parseSignatureSector(image.subarray(image.length - SECTOR_BYTES), image.length - SECTOR_BYTES);
}

/** Whether an image of this many bytes can end in a signature sector. */
export function hasSignatureSectorLength(size: number): boolean {
  return size >= 2 * SECTOR_BYTES && size % SECTOR_BYTES === 0;
}

/** The blocks of a signature sector (the image's last 4096 bytes) that follows `signedLength` bytes. */
export function parseSignatureSector(sector: Buffer, signedLength: number): SignatureSector | null {
  if (sector.length !== SECTOR_BYTES) return null;
  const blocks: SignatureBlock[] = [];
  for (let i = 0; i < MAX_SIG_BLOCKS; i++) {
    const at = i * SIG_BLOCK_BYTES;
    const block = parseBlock(sector.subarray(at, at + SIG_BLOCK_BYTES), i);
    if (!block) break;
    blocks.push(block);
  }
  return blocks.length ? { signedLength, blocks } : null;
}

function parseBlock(raw: Buffer, index: number): SignatureBlock | null {
  if (raw[0] !== SIG_BLOCK_MAGIC) return null;
  if (raw.readUInt32LE(CRC_COVERED_BYTES) !== crc32(raw.subarray(0, CRC_COVERED_BYTES))) return null;
  const imageDigest = Buffer.from(raw.subarray(4, 36));
  try {
    if (raw[1] === VERSION_RSA) {
      const n = raw.subarray(36, 36 + RSA_KEY_BYTES);
      const e = raw.readUInt32LE(36 + RSA_KEY_BYTES);
      const publicKey = createPublicKey({ key: { kty: 'RSA', n: b64url(reversed(n)), e: b64url(uintBytes(BigInt(e))) }, format: 'jwk' });
      return {
        index, algorithm: 'rsa3072-pss', imageDigest, publicKey,
        keyDigest: sha256(raw.subarray(...RSA_KEY_PART)).toString('hex'),
        signature: reversed(raw.subarray(RSA_SIGNATURE_AT, RSA_SIGNATURE_AT + RSA_KEY_BYTES)),
      };
    }
    if (raw[1] === VERSION_ECDSA && raw[2] === ECDSA_SHA_256 && raw[36] === CURVE_P256) {
      const point = raw.subarray(37, 101);
      const publicKey = createPublicKey({
        key: { kty: 'EC', crv: 'P-256', x: b64url(reversed(point.subarray(0, 32))), y: b64url(reversed(point.subarray(32, 64))) }, format: 'jwk',
      });
      const rs = raw.subarray(ECDSA_SIGNATURE_AT, ECDSA_SIGNATURE_AT + 64);
      return {
        index, algorithm: 'ecdsa-p256', imageDigest, publicKey,
        keyDigest: sha256(raw.subarray(...ECDSA_KEY_PART)).toString('hex'),
        signature: Buffer.concat([reversed(rs.subarray(0, 32)), reversed(rs.subarray(32, 64))]),
      };
    }
  } catch {
    return null; // a point off the curve, a modulus of the wrong size: not a block anything can check
  }
  return null; // P-192, P-384 and unknown versions: not schemes mqota signs or checks
}

/** Whether the block's signature over `signedData` (the image without its signature sector) holds. */
export function verifyBlock(block: SignatureBlock, signedData: Buffer): boolean {
  const verifier = blockVerifier(block);
  verifier.update(signedData);
  return verifier.verify();
}

/**
 * A streaming check of one block: feed it the signed bytes in order (a large image need not be
 * in memory), then `verify()`: the digest must be the block's and the signature must hold.
 */
export function blockVerifier(block: SignatureBlock): { update(chunk: Buffer): void; verify(): boolean } {
  const hash = createHash('sha256');
  const verifier = createVerify('sha256');
  return {
    update(chunk) { hash.update(chunk); verifier.update(chunk); },
    verify() {
      if (!hash.digest().equals(block.imageDigest)) return false;
      return block.algorithm === 'rsa3072-pss'
        ? verifier.verify({ key: block.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, block.signature)
        : verifier.verify({ key: block.publicKey, dsaEncoding: 'ieee-p1363' }, block.signature);
    },
  };
}

/** What a public key is to Secure Boot v2: its scheme and the digest the chip trusts. */
export function describeSigningKey(key: KeyObject): { algorithm: SigningAlgorithm; keyDigest: string } {
  const algorithm = algorithmOf(key);
  return { algorithm, keyDigest: sha256(keyPart(key, algorithm)).toString('hex') };
}

function algorithmOf(key: KeyObject): SigningAlgorithm {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa' && d?.modulusLength === 3072) return 'rsa3072-pss';
  if (key.asymmetricKeyType === 'ec' && d?.namedCurve === 'prime256v1') return 'ecdsa-p256';
  const what = key.asymmetricKeyType === 'rsa' ? `RSA-${d?.modulusLength}` : key.asymmetricKeyType === 'ec' ? `EC ${d?.namedCurve}` : key.asymmetricKeyType;
  throw new SignatureFormatError(`a ${what} key: Secure Boot v2 signing keys are RSA-3072 or ECDSA P-256`);
}

/** The block's key part for a public key: n, e, rinv, m' (RSA) or curve id, X, Y (ECDSA), little-endian. */
function keyPart(key: KeyObject, algorithm: SigningAlgorithm): Buffer {
  const jwk = (key.type === 'public' ? key : createPublicKey(key)).export({ format: 'jwk' });
  if (algorithm === 'ecdsa-p256') {
    return Buffer.concat([Buffer.from([CURVE_P256]), reversed(fromB64url(jwk.x!, 32)), reversed(fromB64url(jwk.y!, 32))]);
  }
  const nBytes = fromB64url(jwk.n!, RSA_KEY_BYTES);
  const n = BigInt(`0x${nBytes.toString('hex')}`);
  const e = Number(BigInt(`0x${fromB64url(jwk.e!, 4).toString('hex')}`));
  const rinv = (1n << BigInt(2 * 3072)) % n;
  const m = Number((-modInverse(n, 1n << 32n)) & 0xffffffffn);
  const part = Buffer.alloc(RSA_KEY_PART[1] - RSA_KEY_PART[0]);
  reversed(nBytes).copy(part, 0);
  part.writeUInt32LE(e, RSA_KEY_BYTES);
  reversed(uintBytes(rinv, RSA_KEY_BYTES)).copy(part, RSA_KEY_BYTES + 4);
  part.writeUInt32LE(m, 2 * RSA_KEY_BYTES + 4);
  return part;
}

/**
 * Signs an image: pads it with 0xFF to a sector boundary and appends a signature sector, as
 * `espsecure.py sign_data --version 2 --keyfile <pem>` does. An image that already carries a
 * signature sector gets another block (`--append_signatures`), up to three: the way to be
 * accepted by devices trusting either of two keys during a rotation.
 */
export function signImage(image: Buffer, privateKey: KeyObject): Buffer {
  const { algorithm } = describeSigningKey(createPublicKey(privateKey));
  const existing = readSignatureSector(image);
  let data: Buffer;
  let kept: Buffer[] = [];
  if (existing) {
    if (existing.blocks.length >= MAX_SIG_BLOCKS) throw new SignatureFormatError(`the image already has ${MAX_SIG_BLOCKS} signature blocks, the most a sector holds`);
    data = image.subarray(0, existing.signedLength);
    kept = existing.blocks.map((b) => image.subarray(existing.signedLength + b.index * SIG_BLOCK_BYTES, existing.signedLength + (b.index + 1) * SIG_BLOCK_BYTES));
  } else {
    const pad = (SECTOR_BYTES - (image.length % SECTOR_BYTES)) % SECTOR_BYTES;
    data = Buffer.concat([image, Buffer.alloc(pad, 0xff)]);
  }
  const digest = sha256(data);
  const block = Buffer.alloc(SIG_BLOCK_BYTES);
  block[0] = SIG_BLOCK_MAGIC;
  digest.copy(block, 4);
  const part = keyPart(createPublicKey(privateKey), algorithm);
  part.copy(block, 36);
  if (algorithm === 'rsa3072-pss') {
    block[1] = VERSION_RSA;
    const signature = cryptoSign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    reversed(signature).copy(block, RSA_SIGNATURE_AT);
  } else {
    block[1] = VERSION_ECDSA;
    block[2] = ECDSA_SHA_256;
    const rs = cryptoSign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    Buffer.concat([reversed(rs.subarray(0, 32)), reversed(rs.subarray(32, 64))]).copy(block, ECDSA_SIGNATURE_AT);
  }
  block.writeUInt32LE(crc32(block.subarray(0, CRC_COVERED_BYTES)), CRC_COVERED_BYTES);
  const blocks = Buffer.concat([...kept, block]);
  return Buffer.concat([data, blocks, Buffer.alloc(SECTOR_BYTES - blocks.length, 0xff)]);
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function reversed(bytes: Buffer): Buffer {
  return Buffer.from(bytes).reverse();
}

function b64url(bytes: Buffer): string {
  return bytes.toString('base64url');
}

/** A JWK base64url integer as exactly `size` big-endian bytes. */
function fromB64url(value: string, size: number): Buffer {
  const raw = Buffer.from(value, 'base64url');
  if (raw.length >= size) return raw.subarray(raw.length - size);
  return Buffer.concat([Buffer.alloc(size - raw.length), raw]);
}

/** Big-endian bytes of a non-negative integer, minimal or left-padded to `size`. */
function uintBytes(value: bigint, size = 0): Buffer {
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  const raw = Buffer.from(hex, 'hex');
  return size > raw.length ? Buffer.concat([Buffer.alloc(size - raw.length), raw]) : raw;
}

function modInverse(a: bigint, m: bigint): bigint {
  let [oldR, r] = [a % m, m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  return ((oldS % m) + m) % m;
}
