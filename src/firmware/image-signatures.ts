// What an uploaded image's Secure Boot v2 signature blocks say, checked against the fleet's
// signing keys, and whether the catalog may take it. One decision, used by the upload route.
import { readFile } from 'node:fs/promises';
import { readSignatureSector, verifyBlock, type SigningAlgorithm } from './signature-block.js';
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

export async function inspectImageSignatures(path: string, keys: SigningKeys): Promise<ImageSignature[] | null> {
  const image = await readFile(path);
  const sector = readSignatureSector(image);
  if (!sector) return null;
  const signed = image.subarray(0, sector.signedLength);
  return sector.blocks.map((b) => ({
    index: b.index, algorithm: b.algorithm, keyDigest: b.keyDigest, keyId: keys.byDigest(b.keyDigest)?.id ?? null, verified: verifyBlock(b, signed),
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
