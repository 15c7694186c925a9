// The fleet's firmware signing keys: public halves only (the private key stays with whoever signs
// releases, offline or in an HSM). Several keys can be active at once, which is how a rotation
// works: register the new key, sign releases with both, retire the old one once no device needs
// it. Retiring is final and recorded with who and why; the row stays so the catalog can still
// name the key that signed an old image. Held in memory: uploads check against it.
import { randomUUID } from 'node:crypto';
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { PrismaClient } from '../generated/prisma/client.js';
import { describeSigningKey, SignatureFormatError, type SigningAlgorithm } from './signature-block.js';

export interface SigningKey {
  id: string;
  name: string;
  algorithm: string;
  publicKeyPem: string;
  keyDigest: string;
  createdAt: Date;
  retiredAt: Date | null;
  retiredBy: string | null;
  retireReason: string | null;
}

export class SigningKeyError extends Error {
  constructor(message: string, readonly status: 400 | 404 | 409) {
    super(message);
  }
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export class SigningKeys {
  private readonly keys = new Map<string, SigningKey>();

  constructor(private readonly prisma: PrismaClient) {}

  async load(): Promise<void> {
    for (const key of await this.prisma.signingKey.findMany()) this.keys.set(key.id, key);
  }

  list(): SigningKey[] {
    return [...this.keys.values()].sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
  }

  get(id: string): SigningKey | undefined {
    return this.keys.get(id);
  }

  byDigest(keyDigest: string): SigningKey | undefined {
    for (const key of this.keys.values()) if (key.keyDigest === keyDigest) return key;
    return undefined;
  }

  /** Registers a public key (a private key's PEM is accepted too: only its public half is kept). */
  async add(input: { pem: string; name?: string }): Promise<SigningKey> {
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey(input.pem);
    } catch {
      throw new SigningKeyError('the key is not a PEM public key (or private key) that OpenSSL can read', 400);
    }
    let described: { algorithm: SigningAlgorithm; keyDigest: string };
    try {
      described = describeSigningKey(publicKey);
    } catch (err) {
      throw new SigningKeyError((err as SignatureFormatError).message, 400);
    }
    const name = input.name ?? `${described.algorithm}-${described.keyDigest.slice(0, 8)}`;
    if (!NAME.test(name)) throw new SigningKeyError(`name "${name}" must be 1-64 characters of A-Z a-z 0-9 _ . -`, 400);
    const same = this.byDigest(described.keyDigest);
    if (same) throw new SigningKeyError(`this key is already registered as ${same.name} (${same.id})${same.retiredAt ? ', retired: a retired key is never trusted again' : ''}`, 409);
    if (this.list().some((k) => k.name === name)) throw new SigningKeyError(`a key named ${name} exists`, 409);
    const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const key = await this.prisma.signingKey.create({
      data: { id: `key_${randomUUID()}`, name, algorithm: described.algorithm, publicKeyPem, keyDigest: described.keyDigest },
    }).catch((err: { code?: string }) => {
      throw err.code === 'P2002' ? new SigningKeyError('this key or name is already registered', 409) : err;
    });
    this.keys.set(key.id, key);
    return key;
  }

  async retire(id: string, by: { actor: string; reason: string | null }): Promise<SigningKey> {
    const key = this.keys.get(id);
    if (!key) throw new SigningKeyError(`signing key ${id} not found`, 404);
    if (key.retiredAt) throw new SigningKeyError(`signing key ${key.name} was retired at ${key.retiredAt.toISOString()}`, 409);
    const retired = await this.prisma.signingKey.update({
      where: { id }, data: { retiredAt: new Date(), retiredBy: by.actor, retireReason: by.reason },
    });
    this.keys.set(id, retired);
    return retired;
  }
}
