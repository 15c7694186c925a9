// Which server the CLI talks to, with which token and CA, and where each of those came from.
// Each setting is taken from the first of: a flag, an environment variable, the login profile,
// the server's own folder (./data/admin-token, ./certs/ca.crt; how the CLI worked at first).
// The origin is kept so a failed connection can say what was tried and how to choose another.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ApiError } from './api-client.js';
import { configFile, readCliConfig, type Profile } from './profiles.js';
import { ADMIN_TOKEN_FILE } from '../auth/admin-token.js';

export interface ConnectionFlags { server?: string; token?: string; ca?: string; profile?: string }

export interface Connection {
  baseUrl: string;
  token: string;
  caPem: string | undefined;
  /** Where each setting came from, in words for an error message. */
  origin: { server: string; token: string; ca: string };
}

export const CHOOSE_SERVER = 'choose a server with `mqota login --server URL --ca FILE` (saved in a profile), or MQOTA_SERVER, MQOTA_TOKEN and MQOTA_CA';

export async function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): Promise<Connection> {
  const file = configFile(env);
  const { profile, profileName } = await chooseProfile(flags, env, file);
  const inProfile = `profile "${profileName}" (${file})`;
  const dataDir = path.resolve(env.MQOTA_DATA_DIR ?? './data');
  const certsDir = path.resolve(env.MQOTA_CERTS_DIR ?? './certs');

  const server: [string, string] =
    flags.server ? [flags.server, '--server'] :
    env.MQOTA_SERVER ? [env.MQOTA_SERVER, 'MQOTA_SERVER'] :
    profile ? [profile.server, inProfile] :
    [`https://localhost:${env.HTTPS_PORT || 8443}`, `the default for a server run in this folder (no --server, MQOTA_SERVER or login profile${env.HTTPS_PORT ? '; port from HTTPS_PORT' : ''})`];
  const baseUrl = parseServer(server[0], server[1]);

  const folderTokenFile = path.join(dataDir, ADMIN_TOKEN_FILE);
  const token: [string, string] | undefined =
    flags.token ? [flags.token, '--token'] :
    env.MQOTA_TOKEN ? [env.MQOTA_TOKEN, 'MQOTA_TOKEN'] :
    profile ? [profile.token, inProfile] :
    env.MQOTA_ADMIN_TOKEN ? [env.MQOTA_ADMIN_TOKEN, 'MQOTA_ADMIN_TOKEN (the server\'s own setting)'] :
    await readFile(folderTokenFile, 'utf8').then((t) => [t.trim(), folderTokenFile] as [string, string], () => undefined);
  if (!token?.[0]) throw new Error(`no API token for ${baseUrl}: run \`mqota login\`, pass --token, set MQOTA_TOKEN, or run where ${folderTokenFile} exists`);

  const folderCa = path.join(certsDir, 'ca.crt');
  const ca: [string | undefined, string] =
    flags.ca ? [await readCa(flags.ca, '--ca'), `--ca ${flags.ca}`] :
    env.MQOTA_CA ? [await readCa(env.MQOTA_CA, 'MQOTA_CA'), `MQOTA_CA ${env.MQOTA_CA}`] :
    profile ? [profile.caPem, profile.caPem ? inProfile : `the system's trusted CAs (${inProfile} has no CA)`] :
    await readFile(folderCa, 'utf8').then((pem) => [pem, folderCa] as [string, string], () => [undefined, 'the system\'s trusted CAs']);

  return { baseUrl, token: token[0], caPem: ca[0], origin: { server: server[1], token: token[1], ca: ca[1] } };
}

async function chooseProfile(flags: ConnectionFlags, env: NodeJS.ProcessEnv, file: string): Promise<{ profile?: Profile; profileName: string }> {
  const asked = flags.profile ?? env.MQOTA_PROFILE;
  // With every setting given, the profiles are not read: a broken config file stops nothing.
  if (!asked && (flags.server ?? env.MQOTA_SERVER) && (flags.token ?? env.MQOTA_TOKEN) && (flags.ca ?? env.MQOTA_CA)) return { profileName: '' };
  const config = await readCliConfig(file);
  if (asked) {
    const profile = config.profiles[asked];
    if (!profile) throw new Error(`no profile "${asked}" in ${file}: create it with \`mqota login --profile ${asked} --server URL --ca FILE\``);
    return { profile, profileName: asked };
  }
  const name = config.defaultProfile;
  return name && config.profiles[name] ? { profile: config.profiles[name], profileName: name } : { profileName: '' };
}

export function parseServer(value: string, from: string): string {
  let url: URL;
  try { url = new URL(value); } catch { throw new Error(`server "${value}" (from ${from}) is not a URL; expected https://host:port`); }
  if (url.protocol !== 'https:') throw new Error(`server "${value}" (from ${from}) must be an https:// URL: the API is served over TLS only`);
  return url.origin;
}

export async function readCa(file: string, from: string): Promise<string> {
  const pem = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot read the CA certificate ${file} (from ${from}): ${err.code ?? err.message}`);
  });
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`${file} (from ${from}) holds no PEM certificate`);
  return pem;
}

const NETWORK: Record<string, string> = {
  ECONNREFUSED: 'connection refused: is mqota running there, on that port?',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'the host name could not be resolved now',
  ETIMEDOUT: 'the connection timed out',
  ECONNRESET: 'the connection was reset',
  EHOSTUNREACH: 'the host is unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'the connection timed out',
};
// OpenSSL's verification failures, as Node reports them (err.code).
const CERTIFICATE = /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_|ERR_TLS_CERT_ALTNAME_INVALID)/;

/**
 * Explains a failure to reach or be accepted by the server: what was tried, where that setting
 * came from, and how to choose another. Undefined for any other error (the server's own answer).
 */
export function explainConnectionFailure(err: unknown, c: Connection): string | undefined {
  const server = `${c.baseUrl} (server from ${c.origin.server})`;
  if (err instanceof ApiError) {
    if (err.statusCode !== 401) return undefined;
    return `${server} refused the API token (HTTP 401: ${err.message}); the token came from ${c.origin.token}.\n  ${CHOOSE_SERVER}`;
  }
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.code && (NETWORK[e.code] || CERTIFICATE.test(e.code)) ? e.code : e.cause?.code;
  if (!code) return undefined;
  if (NETWORK[code]) return `cannot reach ${server}: ${NETWORK[code]} (${code}).\n  ${CHOOSE_SERVER}`;
  if (CERTIFICATE.test(code)) {
    return `cannot trust ${server}: ${e.message ?? e.cause?.message} (${code}); the CA came from ${c.origin.ca}.\n  `
      + `pass the CA that signed the server certificate with --ca FILE or MQOTA_CA; or ${CHOOSE_SERVER}`;
  }
  return undefined;
}
