// @peculiar/x509 (with reflect-metadata, on Node's WebCrypto), loaded on first use: it makes and
// parses certificates, CSRs and CRLs, which a restart with its certificates in place never does,
// and loading it took ~0.5 s of every start (bench/README.md, "Start-up and memory"). Checks at
// start-up use Node's own X509Certificate.
import { webcrypto } from 'node:crypto';
import type * as X509 from '@peculiar/x509';

let loading: Promise<typeof X509> | undefined;

export function x509Library(): Promise<typeof X509> {
  loading ??= (async () => {
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    return x509;
  })();
  return loading;
}
