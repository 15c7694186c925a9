// What an uploaded image's Secure Boot v2 signature blocks say, checked against the fleet's
// signing keys, and whether the catalog may take it. One decision, used by the upload route.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { blockVerifier, hasSignatureSectorLength, parseSignatureSector, SECTOR_BYTES, type SignatureSector, type SigningAlgorithm } from './signature-block.js';
import type { SigningKeys } from './signing-keys.js';

/** One block as stored with the firmware (Firmware.signatures). */
export interface ImageSignature {
  index: number;
  algorithm: SigningAlgorithm;
  keyDigest: string;
  /** The registered key with this digest, null for an unknown key. */
  keyId: string | null;
  /** The block's signature holds over the image (whoever's key it is). */
  verified: boolean;
}

export type SignatureDecision =
  | { ok: true; signatures: ImageSignature[] | null; warnings: string[] }
  | { ok: false; message: string };

/** Reads the signature sector at the end of the stored image and checks each block, streaming the signed bytes once. */
export async function inspectImageSignatures(path: string, keys: SigningKeys): Promise<ImageSignature[] | null> {
  const file = await open(path, 'r');
  let sector: SignatureSector | null;
  try {
    const { size } = await file.stat();
    if (!hasSignatureSectorLength(size)) return null;
    const tail = Buffer.alloc(SECTOR_BYTES);
    await file.read(tail, 0, SECTOR_BYTES, size - SECTOR_BYTES);
    sector = parseSignatureSector(tail, size - SECTOR_BYTES);
  } finally {
    await file.close();
  }
  if (!sector) return null;
  const verifiers = sector.blocks.map(blockVerifier);
  if (sector.signedLength > 0) {
    for await (const chunk of createReadStream(path, { start: 0, end: sector.signedLength - 1 })) {
      for (const v of verifiers) v.update(chunk as Buffer);
    }
  }
  return sector.blocks.map((b, i) => ({
    index: b.index, algorithm: b.algorithm, keyDigest: b.keyDigest, keyId: keys.byDigest(b.keyDigest)?.id ?? null, verified: verifiers[i].verify(),
  }));
}

/**
 * With `requireSigned`, at least one block must verify and come from a registered key that is
 * not retired; otherwise the answer names what is wrong. Without it the image is taken and what
 * is wrong becomes a warning: the devices that check signatures refuse it themselves.
 */
export function decideSignatures(signatures: ImageSignature[] | null, keys: SigningKeys, requireSigned: boolean): SignatureDecision {
  const problems: string[] = [];
  let trusted = false;
  if (!signatures) {
    problems.push('the image carries no Secure Boot v2 signature block (sign it: mqota firmware sign, or espsecure.py sign_data --version 2)');
  } else {
    for (const s of signatures) {
      const key = s.keyId ? keys.get(s.keyId) : undefined;
      const label = `signature block ${s.index} (${s.algorithm}, key digest ${s.keyDigest.slice(0, 16)}…)`;
      if (!s.verified) problems.push(`${label} does not verify: the image was changed after it was signed`);
      else if (!key) problems.push(`${label} is made by a key that is not registered (mqota keys add)`);
      else if (key.retiredAt) problems.push(`${label} is made by ${key.name}, retired ${key.retiredAt.toISOString()}`);
      else trusted = true;
    }
  }
  if (requireSigned && !trusted) {
    return { ok: false, message: `MQOTA_REQUIRE_SIGNED_IMAGES is on and no signature of a registered, active key holds: ${problems.join('; ')}` };
  }
  // A fleet that registered no key does not sign; an unsigned image is no news there.
  const quiet = trusted || (!signatures && keys.list().length === 0);
  return { ok: true, signatures, warnings: quiet ? [] : problems };
}
