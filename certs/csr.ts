// Certificate signing requests from devices that make their own key (PKCS#10, RFC 2986): what
// mqota accepts before the device CA signs the key in one. The private key never leaves the
// device; the CSR proves the device holds it (its signature), and mqota writes the subject itself
// (CN = the device id, OU = the role), so nothing else the CSR asks for reaches the certificate.
import 'reflect-metadata';
import { createHash, createPublicKey, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** A CSR mqota will not sign; the message says why, for a 400 or a device's `refused`. */
export class CsrError extends Error {}

export interface CheckedCsr {
  /** The device's public key, for the certificate. */
  publicKey: x509.PublicKey;
  /** `ECDSA P-256`, `RSA 2048`, ... */
  key: string;
  /** SHA-256 of the DER SubjectPublicKeyInfo, hex: the same key sent twice is recognised. */
  keyId: string;
}

/** Large enough for a 4096-bit RSA CSR with a few attributes; more is not a CSR we want to parse. */
export const MAX_CSR_PEM_LENGTH = 8 * 1024;
const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 4096;

/**
 * Parses and checks a PEM CSR for device `expectedId`: its signature verifies with its own key
 * (proof of possession), the key is ECDSA P-256 or RSA 2048-4096, and the subject CN, when
 * there is one, is `expectedId` (a CSR without CN gets it). Throws CsrError naming the problem.
 */
export async function checkCsr(pem: string, expectedId: string): Promise<CheckedCsr> {
  if (typeof pem !== 'string' || pem.length > MAX_CSR_PEM_LENGTH) throw new CsrError(`a CSR is a PEM text of at most ${MAX_CSR_PEM_LENGTH} characters`);
  const block = /-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END (?:NEW )?CERTIFICATE REQUEST-----/.exec(pem);
  if (!block) throw new CsrError('not a PEM certificate signing request (expected -----BEGIN CERTIFICATE REQUEST-----)');
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(Buffer.from(block[1].replace(/\s+/g, ''), 'base64'));
  } catch (err) {
    throw new CsrError(`the certificate signing request does not parse: ${(err as Error).message}`);
  }

  const spki = Buffer.from(csr.publicKey.rawData);
  let key: string;
  try {
    const keyObject = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    const details = keyObject.asymmetricKeyDetails ?? {};
    if (keyObject.asymmetricKeyType === 'ec' && details.namedCurve === 'prime256v1') key = 'ECDSA P-256';
    else if (keyObject.asymmetricKeyType === 'rsa' && (details.modulusLength ?? 0) >= RSA_MIN_BITS && (details.modulusLength ?? 0) <= RSA_MAX_BITS) key = `RSA ${details.modulusLength}`;
    else {
      const what = keyObject.asymmetricKeyType === 'ec' ? `EC ${details.namedCurve}` : keyObject.asymmetricKeyType === 'rsa' ? `RSA ${details.modulusLength}` : keyObject.asymmetricKeyType;
      throw new CsrError(`the CSR's key is ${what}: mqota signs ECDSA P-256 or RSA ${RSA_MIN_BITS}-${RSA_MAX_BITS} keys`);
    }
  } catch (err) {
    if (err instanceof CsrError) throw err;
    throw new CsrError(`the CSR's public key does not parse: ${(err as Error).message}`);
  }

  let valid = false;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) throw new CsrError('the CSR\'s signature does not verify with its own key (corrupted, or not made with the private key)');

  const cns = csr.subjectName.getField('CN');
  if (cns.length > 1) throw new CsrError('the CSR subject has more than one CN');
  if (cns.length === 1 && cns[0] !== expectedId) throw new CsrError(`the CSR subject CN is ${JSON.stringify(cns[0])}, not the device id ${JSON.stringify(expectedId)}`);

  return { publicKey: csr.publicKey, key, keyId: createHash('sha256').update(spki).digest('hex') };
}
