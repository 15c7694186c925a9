// `mqota login` and `mqota logout`: save a server, its CA and a token as a profile in the user's
// config directory, after checking that the server accepts them, so the CLI works from any folder.
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { Option, type Command } from 'commander';
import { ApiClient } from './api-client.js';
import { explainConnectionFailure, parseServer, readCa, type Connection, type ConnectionFlags } from './connection.js';
import { configFile, PROFILE_NAME, readCliConfig, writeCliConfig } from './profiles.js';

export function registerLogin(program: Command): void {
  program.command('login')
    .description('check a server, its CA and a token, and save them as a profile in the user\'s config directory (mode 0600)')
    .addOption(new Option('--default', 'make this profile the default (the first profile saved becomes it anyway)'))
    .addHelpText('after', [
      '', 'Takes the global options: --server URL (or MQOTA_SERVER; required), --ca FILE (or MQOTA_CA; without it,',
      'the system\'s trusted CAs), --token (or MQOTA_TOKEN; without it, prompted without echo, or read from a',
      'piped stdin), --profile NAME (default: the default profile, else "default").', '',
      'Example: mqota login --server https://ota.example.com:8443 --ca ca.crt',
    ].join('\n'))
    .action(async (o: { default?: boolean }) => {
      const flags = program.opts<ConnectionFlags & { json?: boolean }>();
      const env = process.env;
      const file = configFile(env);
      const config = await readCliConfig(file);
      const name = flags.profile ?? env.MQOTA_PROFILE ?? config.defaultProfile ?? 'default';
      if (!PROFILE_NAME.test(name)) throw new Error(`profile name "${name}": use letters, digits, '.', '_' and '-' (up to 64)`);
      const serverFrom = flags.server ? '--server' : 'MQOTA_SERVER';
      const serverValue = flags.server ?? env.MQOTA_SERVER;
      if (!serverValue) throw new Error('which server? pass --server https://host:port (or set MQOTA_SERVER)');
      const baseUrl = parseServer(serverValue, serverFrom);
      const caFile = flags.ca ?? env.MQOTA_CA;
      const caPem = caFile ? await readCa(caFile, flags.ca ? '--ca' : 'MQOTA_CA') : undefined;
      const token = flags.token ?? env.MQOTA_TOKEN ?? await promptSecret(`API token for ${baseUrl}: `);
      if (!token) throw new Error('no token given: pass --token, set MQOTA_TOKEN, or type it at the prompt');

      const connection: Connection = {
        baseUrl, token, caPem,
        origin: { server: serverFrom, token: flags.token ? '--token' : env.MQOTA_TOKEN ? 'MQOTA_TOKEN' : 'the prompt', ca: caFile ?? 'the system\'s trusted CAs' },
      };
      const api = new ApiClient({ baseUrl, token, caPem });
      let who: { name: string; role: string };
      try {
        who = await api.call<{ name: string; role: string }>('GET', '/api/whoami');
      } catch (err) {
        throw new Error(`nothing saved: ${explainConnectionFailure(err, connection) ?? (err as Error).message}`);
      } finally {
        await api.close();
      }

      config.profiles[name] = { server: baseUrl, token, ...(caPem ? { caPem } : {}) };
      if (o.default || !config.defaultProfile || !config.profiles[config.defaultProfile]) config.defaultProfile = name;
      await writeCliConfig(config, file);
      const result = { profile: name, default: config.defaultProfile === name, server: baseUrl, token: who, file };
      process.stdout.write(flags.json ? `${JSON.stringify(result, null, 2)}\n`
        : `logged in to ${baseUrl} as ${who.name} (${who.role}); profile "${name}"${result.default ? ' (default)' : ''} saved in ${file}\n`);
    });

  program.command('logout')
    .description('forget a saved profile and its token (--profile NAME, else the default profile); the token itself stays valid on the server')
    .action(async () => {
      const flags = program.opts<ConnectionFlags & { json?: boolean }>();
      const file = configFile();
      const config = await readCliConfig(file);
      const name = flags.profile ?? process.env.MQOTA_PROFILE ?? config.defaultProfile;
      if (!name || !config.profiles[name]) throw new Error(name ? `no profile "${name}" in ${file}` : `no default profile in ${file}: nothing to log out of`);
      const { server } = config.profiles[name];
      delete config.profiles[name];
      if (config.defaultProfile === name) delete config.defaultProfile;
      await writeCliConfig(config, file);
      process.stdout.write(flags.json ? `${JSON.stringify({ profile: name, server, removed: true })}\n` : `profile "${name}" (${server}) removed from ${file}\n`);
    });
}

/** Reads a secret without echo from a terminal, or the first line of a piped stdin. */
async function promptSecret(question: string): Promise<string> {
  if (!process.stdin.isTTY) return (await text(process.stdin)).split(/\r?\n/)[0].trim();
  process.stderr.write(question);
  const silent = new Writable({ write(_chunk, _encoding, done) { done(); } });
  const rl = createInterface({ input: process.stdin, output: silent, terminal: true });
  rl.on('SIGINT', () => { rl.close(); process.stderr.write('\n'); process.exit(130); });
  const answer = await new Promise<string>((resolve) => rl.question('', resolve));
  rl.close();
  process.stderr.write('\n');
  return answer.trim();
}
