// The command key: ECDSA P-256, signs update commands (src/protocol/command-signature.ts). Made
// on first start next to the other PKI material, kept there (mode 0600, git-ignored), never
// sent anywhere; its public half goes into every device bundle.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const COMMAND_KEY_FILE = 'command-key.key';
export const COMMAND_PUBLIC_KEY_FILE = 'command-key.pem';

export interface CommandKey {
  privateKey: KeyObject;
  /** SPKI PEM of the public half, for device bundles. */
  publicPem: string;
  created: boolean;
}

export async function ensureCommandKey(dir: string): Promise<CommandKey> {
  const keyPath = path.join(dir, COMMAND_KEY_FILE);
  let pem: string | null = null;
  try {
    pem = await readFile(keyPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  let created = false;
  if (pem === null) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await writeFile(keyPath, pem, { mode: 0o600, flag: 'wx' });
    await chmod(keyPath, 0o600);
    created = true;
  }
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error(`${keyPath} is not an ECDSA P-256 key; move it away and a new command key is made`);
  }
  const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  await writeFile(path.join(dir, COMMAND_PUBLIC_KEY_FILE), publicPem);
  return { privateKey, publicPem, created };
}
