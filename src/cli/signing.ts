// `mqota keys add|list|retire` (the fleet's firmware signing keys, through the API) and
// `mqota firmware sign` (offline: the private key never goes to the server).
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { ApiClient } from './api-client.js';
import { describeSigningKey, readSignatureSector, signImage } from '../firmware/signature-block.js';

type Print = (value: unknown, text: () => string) => void;
type WithClient = <T>(fn: (api: ApiClient) => Promise<T>) => Promise<T>;
type Table = (rows: Record<string, unknown>[], columns: string[]) => string;
interface KeyView { id: string; name: string; algorithm: string; keyDigest: string; retiredAt: string | null; retiredBy: string | null; retireReason: string | null }

export function registerSigning(program: Command, firmware: Command, deps: { withClient: WithClient; print: Print; table: Table }): void {
  const { withClient, print, table } = deps;

  firmware.command('sign').argument('<image>', 'the ESP-IDF application image to sign (.bin)')
    .description('sign an image offline with a Secure Boot v2 signature block (RSA-3072-PSS or ECDSA P-256), as espsecure.py sign_data --version 2 does; a signed image gets one more block (up to 3)')
    .requiredOption('--key <pem>', 'the private signing key (PEM); it is read here and sent nowhere')
    .option('--out <file>', 'where to write the signed image (default: <image> with .signed.bin)')
    .action(async (image: string, o: { key: string; out?: string }) => {
      const key = createPrivateKey(await readFile(o.key));
      const signed = signImage(await readFile(image), key);
      const out = o.out ?? image.replace(/(\.bin)?$/, '.signed.bin');
      await writeFile(out, signed);
      const { algorithm, keyDigest } = describeSigningKey(createPublicKey(key));
      const blocks = readSignatureSector(signed)!.blocks.length;
      print({ out, algorithm, keyDigest, blocks, size: signed.length }, () =>
        `signed ${image} with ${algorithm} key ${keyDigest}\n  wrote ${out} (${signed.length} bytes, ${blocks} signature block${blocks > 1 ? 's' : ''})`);
    });

  const keys = program.command('keys').description('firmware signing keys: the Secure Boot v2 public keys uploads are checked against (admin)');
  keys.command('add').argument('<pem>', 'the public key file (PEM), or its private key: only the public half is sent')
    .description('register a public key (a private key file works too: only its public half is sent)')
    .option('--name <name>', 'a name for it (default: algorithm and digest prefix)')
    .action(async (pem: string, o: { name?: string }) => withClient(async (api) => {
      const publicKeyPem = createPublicKey(await readFile(pem)).export({ type: 'spki', format: 'pem' }).toString();
      const k = await api.call<KeyView>('POST', '/api/keys', { publicKeyPem, ...(o.name ? { name: o.name } : {}) });
      print(k, () => `signing key ${k.name} (${k.algorithm}) registered as ${k.id}\n  key digest ${k.keyDigest}`);
    }));
  keys.command('list').description('list signing keys, retired ones included').action(async () => withClient(async (api) => {
    const rows = await api.call<KeyView[]>('GET', '/api/keys');
    print(rows, () => table(rows.map((r) => ({ ...r, keyDigest: `${r.keyDigest.slice(0, 16)}…` })), ['id', 'name', 'algorithm', 'keyDigest', 'retiredAt']));
  }));
  keys.command('retire').argument('<id>', 'signing key id (see `mqota keys list`)')
    .description('retire a key: images it signs are no longer trusted by uploads under MQOTA_REQUIRE_SIGNED_IMAGES nor by new bundles (audited, final)')
    .option('--reason <text>', 'why, for the audit log')
    .action(async (id: string, o: { reason?: string }) => withClient(async (api) => {
      const k = await api.call<KeyView>('POST', `/api/keys/${encodeURIComponent(id)}/retire`, o.reason ? { reason: o.reason } : {});
      print(k, () => `signing key ${k.name} retired at ${k.retiredAt} by ${k.retiredBy}`);
    }));
}
