// Signed update commands (docs/protocol.md "Signed commands"): with an external broker, whoever
// runs the broker could publish an update command of their own; a device that holds the command
// key's public half (from its bundle) acts only on commands this server signed, for it, recently.
//
// The signature is ECDSA P-256 with SHA-256, DER-encoded (what OpenSSL's EVP_DigestVerify and
// mbedTLS's mbedtls_pk_verify take), base64 in `sig`, over the canonical text below: one field a
// line, in this order, so that the device rebuilds the same bytes from the JSON it decoded
// without any JSON canonicalisation. `expires` is Unix seconds.
import { sign, verify, type KeyObject } from 'node:crypto';
import type { Command } from './messages.js';

export const COMMAND_SIGNATURE_CONTEXT = 'mqota-command-v1';

type UpdateCommand = Extract<Command, { action: 'update' }>;

/** The bytes signed: context, device id, updateId, type, version, imageVersion ('' if none), sha256, size, expires. */
export function commandSigningText(deviceId: string, c: UpdateCommand & { expires: number }): string {
  return [COMMAND_SIGNATURE_CONTEXT, deviceId, c.updateId, c.type, c.version, c.imageVersion ?? '', c.sha256, String(c.size), String(c.expires)].join('\n');
}

/** The update command with `deviceId`, `expires` and `sig` added; other commands unchanged (they move nothing onto the device). */
export function signCommand(key: KeyObject, deviceId: string, command: Command, expires: number): Command {
  if (command.action !== 'update') return command;
  // deviceId is also signed (first line of the text): a device tells a command for another one by it.
  const withExpiry = { ...command, deviceId, expires };
  const sig = sign('sha256', Buffer.from(commandSigningText(deviceId, withExpiry), 'utf8'), { key, dsaEncoding: 'der' }).toString('base64');
  return { ...withExpiry, sig };
}

/** For tests and tools: whether `command` carries a valid signature for `deviceId` by `publicKey`. */
export function verifyCommand(publicKey: KeyObject, deviceId: string, command: UpdateCommand): boolean {
  if (command.expires === undefined || command.sig === undefined) return false;
  return verify('sha256', Buffer.from(commandSigningText(deviceId, command as UpdateCommand & { expires: number }), 'utf8'),
    { key: publicKey, dsaEncoding: 'der' }, Buffer.from(command.sig, 'base64'));
}

/** What the composition root wraps the command channel with: signs when enabled, passes through otherwise. */
export function commandSigner(opts: { key: KeyObject | null; ttlSeconds: number; now?: () => number }): (deviceId: string, command: Command) => Command {
  const { key, ttlSeconds } = opts;
  const now = opts.now ?? Date.now;
  if (!key) return (_deviceId, command) => command;
  return (deviceId, command) => signCommand(key, deviceId, command, Math.floor(now() / 1000) + ttlSeconds);
}
