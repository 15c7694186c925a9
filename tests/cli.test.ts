// The `mqota` CLI as an operator runs it: a real process against a real server, human output and
// --json, firmware upload, rollout create with controls, live watch to completion, pause/resume,
// device labels and fleet filters, certificate rotation and revocation; login profiles, the
// environment and flags that choose a server, and errors that say which server was tried.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { startFleet, stopFleet, type SimulatedDevice } from './support/fleet.js';
import { connectDevice, connectFailure, endAll } from './support/mqtt.js';
import { eventually } from './support/eventually.js';
import { announce, startTestServer, type TestServer } from './support/server.js';

const run = promisify(execFile);
type Json = Record<string, any>;

describe('mqota CLI', () => {
  let server: TestServer;
  let tmp: string;
  let fleet: SimulatedDevice[] = [];
  const cli = path.resolve('bin/mqota.js');
  const base = () => ['--server', server.mqota.publicUrl, '--token', server.config.adminToken!, '--ca', server.pki.paths.caCert];
  const mqota = async (...args: string[]) => (await run(process.execPath, [cli, ...base(), ...args])).stdout;
  const mqotaJson = async (...args: string[]) => JSON.parse(await mqota('--json', ...args)) as Json;
  /** The CLI as a user runs it elsewhere: only the given environment (no MQOTA_* of this process), any folder, optional stdin. */
  const mqotaIn = (opts: { cwd: string; env: Record<string, string>; input?: string }, ...args: string[]) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MQOTA_') && k !== 'HTTPS_PORT' && k !== 'XDG_CONFIG_HOME')) as Record<string, string>;
    const child = spawn(process.execPath, [cli, ...args], { cwd: opts.cwd, env: { ...env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.stdin.end(opts.input ?? '');
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  /** A loopback port nothing listens on: one the kernel just gave out and that was closed again. */
  const closedPort = async () => {
    const s = createServer();
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    const { port } = s.address() as { port: number };
    await new Promise((resolve) => s.close(resolve));
    return port;
  };

  before(async () => {
    // Webhooks to loopback: the receiver of the webhook test is a closed local port.
    server = await startTestServer({ env: { MQOTA_ROLLOUT_TICK_MS: '50', MQOTA_WEBHOOK_ALLOW_HTTP: 'true', MQOTA_WEBHOOK_ALLOW_PRIVATE: 'true' } });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-cli-'));
    for (const v of ['1.0.0', '1.1.0', '1.2.0']) await writeFile(path.join(tmp, `cl-${v}.bin`), buildEspAppImage({ projectName: 'cl', version: v, payloadBytes: 4096 }));
    fleet = await startFleet(server, 'cl', 4, 'cl', '1.0.0');
    await eventually(() => fleet.every((d) => d.commands.length >= 1), 30_000, 'fleet up');
  });
  after(async () => { await stopFleet(fleet); await server?.close(); });

  test('firmware upload reads type and version from the image; list shows it', async () => {
    const out = await mqota('firmware', 'upload', path.join(tmp, 'cl-1.0.0.bin'));
    assert.match(out, /uploaded cl 1\.0\.0 as fw_/);
    const fw = await mqotaJson('firmware', 'upload', path.join(tmp, 'cl-1.1.0.bin'), '--notes', 'fixes');
    assert.equal(fw.version, '1.1.0');
    assert.equal(fw.notes, 'fixes');
    const table = await mqota('firmware', 'list');
    assert.match(table, /^ID\s+TYPE\s+VERSION/m);
    assert.match(table, /cl\s+1\.1\.0\s+stable/);
  });

  test('rollout create with waves, then watch follows it to completion', async () => {
    const [fw] = (await mqotaJson('firmware', 'list')).filter((f: Json) => f.version === '1.1.0');
    const r = await mqotaJson('rollout', 'create', '--firmware', fw.id, '--waves', '50,100', '--name', 'cl-canary', '--max-per-minute', '600', '--retries', '1');
    assert.equal(r.name, 'cl-canary');
    assert.deepEqual(r.waveSizes, [50, 100]);
    assert.equal(r.policy.maxPerMinute, 600);
    assert.equal(r.policy.maxRetries, 1);
    const watch = spawn(process.execPath, [cli, ...base(), 'rollout', 'watch', r.id], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    watch.stdout.on('data', (d) => { out += d; });
    const code = await new Promise<number | null>((resolve) => watch.on('exit', resolve));
    assert.equal(code, 0, out);
    assert.match(out, /completed/);
    assert.match(out, /succeeded\s+█+\s+4\s+100 %/);
    const rows = await mqotaJson('rollout', 'list', '--state', 'completed');
    assert.ok(rows.some((x: Json) => x.id === r.id));
    const show = await mqota('rollout', 'show', r.id);
    assert.match(show, /DEVICEID\s+WAVE\s+STATE/);
  });

  test('device history shows each attempt with its states; device list, and devices list as a hidden alias', async () => {
    const attempts = await mqotaJson('device', 'history', 'cl-2') as unknown as Json[];
    const done = attempts.find((a) => a.targetVersion === '1.1.0');
    assert.ok(done, JSON.stringify(attempts));
    assert.equal(done.state, 'succeeded');
    assert.equal(done.history.at(-1).state, 'succeeded');
    assert.ok(done.history.length >= 2, 'the states before success are in the history too');
    const human = await mqota('device', 'history', 'cl-2');
    assert.match(human, /^device cl-2 \(cl, now on 1\.1\.0\)/);
    assert.match(human, new RegExp(`${done.updateId}\\s+1\\.0\\.0 → 1\\.1\\.0\\s+succeeded\\s+rollout ro_`));
    assert.match(human, /^ {2}AT\s+STATE\s+PROGRESS/m);
    await assert.rejects(mqota('device', 'history', 'cl-nobody'), (e: any) => /device cl-nobody.*not found.*\(HTTP 404\)/i.test(e.stderr));

    const listed = (await mqotaJson('device', 'list', '--type', 'cl')).map((d: Json) => d.id).sort();
    assert.deepEqual(listed, ['cl-0', 'cl-1', 'cl-2', 'cl-3']);
    assert.deepEqual((await mqotaJson('devices', 'list', '--type', 'cl')).map((d: Json) => d.id).sort(), listed);
    const help = await mqota('--help');
    assert.doesNotMatch(help, /^ {2}devices\b/m);
    assert.match(help, /^ {2}device\s/m);
  });

  test('firmware show and delete', async () => {
    const [fw] = (await mqotaJson('firmware', 'list')).filter((f: Json) => f.version === '1.0.0');
    const shown = await mqota('firmware', 'show', fw.id);
    assert.match(shown, new RegExp(`^${fw.id}: cl 1\\.0\\.0 \\(stable\\), \\d+ bytes`));
    assert.match(shown, new RegExp(`sha256 ${fw.sha256}`));
    assert.match(shown, /image: cl 1\.0\.0, chip/);
    assert.equal((await mqotaJson('firmware', 'show', fw.id)).sha256, fw.sha256);
    assert.match(await mqota('firmware', 'delete', fw.id), new RegExp(`firmware ${fw.id} deleted`));
    await assert.rejects(mqota('firmware', 'show', fw.id), (e: any) => /not found.*\(HTTP 404\)/i.test(e.stderr));
    assert.ok(!(await mqotaJson('firmware', 'list')).some((f: Json) => f.id === fw.id));
  });

  test('pause and resume; labels and filters', async () => {
    const fw = await mqotaJson('firmware', 'upload', path.join(tmp, 'cl-1.2.0.bin'));
    for (const d of fleet) d.behaviour = 'silent';
    const r = await mqotaJson('rollout', 'create', '--firmware', fw.id, '--waves', '1,100');
    assert.match(await mqota('rollout', 'pause', r.id), /paused/);
    await assert.rejects(mqota('rollout', 'pause', r.id), (e: any) => /already paused \(HTTP 409\)/.test(e.stderr));
    assert.match(await mqota('rollout', 'resume', r.id), /running/);
    await assert.rejects(mqota('firmware', 'delete', fw.id), (e: any) => /used by a running rollout.*\(HTTP 409\)/.test(e.stderr));
    assert.match(await mqota('rollout', 'cancel', r.id), /cancelled/);

    const labelled = await mqotaJson('device', 'label', 'cl-1', '--tags', 'lab,floor-2', '--channel', 'beta');
    assert.deepEqual(labelled.tags, ['lab', 'floor-2']);
    const ids = (await mqotaJson('devices', 'list', '--tag', 'lab')).map((d: Json) => d.id);
    assert.deepEqual(ids, ['cl-1']);
    assert.deepEqual((await mqotaJson('devices', 'list', '--channel', 'beta')).map((d: Json) => d.id), ['cl-1']);
    const human = await mqota('devices', 'list', '--type', 'cl', '--version', '>=1.1.0');
    assert.match(human, /cl-1\s+cl\s+1\.1\.0\s+-\s+beta\s+lab,floor-2\s+true/);
  });

  test('rollout edit, promote and retry; show numbers waves from 1; watch exits 2 with the reason when the rollout pauses', async () => {
    for (const v of ['1.0.0', '1.1.0']) await writeFile(path.join(tmp, `cs-${v}.bin`), buildEspAppImage({ projectName: 'cs', version: v, payloadBytes: 2048 }));
    await mqotaJson('firmware', 'upload', path.join(tmp, 'cs-1.0.0.bin'));
    const fw = await mqotaJson('firmware', 'upload', path.join(tmp, 'cs-1.1.0.bin'));
    const devices = await startFleet(server, 'cs', 2, 'cs', '1.0.0', { plan: ['fail'] });
    try {
      await eventually(() => devices.every((d) => d.commands.length >= 1), 30_000, 'cs fleet up');
      const r = await mqotaJson('rollout', 'create', '--firmware', fw.id, '--waves', '1,2', '--wave-unit', 'count', '--failure-count', '1', '--wave-deadline', '300');
      assert.equal(r.policy.waveDeadlineSeconds, 300);
      const watch = await mqotaIn({ cwd: tmp, env: {} }, ...base(), 'rollout', 'watch', r.id);
      assert.equal(watch.code, 2, watch.stderr);
      assert.equal(watch.stderr, `mqota: rollout ${r.id} paused: failure threshold reached: 1 of 1 finished attempts failed\n`);
      for (const d of devices) d.plan = []; // from here on every command succeeds

      const show = await mqota('rollout', 'show', r.id);
      assert.match(show, /^ {2}wave 1 of 2$/m);
      assert.match(show, /^WAVE\s+STATE\s+DEVICES\s+SUCCEEDED\s+FAILED\s+SKIPPED\n1\s+active\s+1\s+0\s+1\s+0\n2\s+pending\s+1\s+0\s+0\s+0$/m);
      assert.match(show, /^cs-\d\s+1\s+failed\s+/m);
      assert.match(show, /^cs-\d\s+2\s+not started\s+/m);

      const edited = await mqota('rollout', 'edit', r.id, '--failure-count', '3', '--max-per-minute', 'none', '--soak', '0');
      assert.equal(edited, `rollout ${r.id} (paused) changed:\n  failureThreshold {"count":1} → {"count":3}\n`);
      // One field of the threshold changes; the others stay.
      assert.equal(await mqota('rollout', 'edit', r.id, '--failure-percent', '50'), `rollout ${r.id} (paused) changed:\n  failureThreshold {"count":3} → {"count":3,"percent":50}\n`);
      await assert.rejects(mqota('rollout', 'edit', r.id), (e: any) => /nothing to change/.test(e.stderr));
      await assert.rejects(mqota('rollout', 'edit', r.id, '--waves', '2,2', '--wave-unit', 'count'), (e: any) => /strictly ascending.*\(HTTP 400\)/.test(e.stderr));
      assert.match(await mqota('rollout', 'promote', r.id), /: paused, wave 2 of 2$/m);
      assert.match(await mqota('rollout', 'retry', r.id), /: paused, wave 2 of 2; 1 device\(s\) get a new attempt$/m);
      assert.match(await mqota('rollout', 'resume', r.id), /: running/);
      const done = await eventually(async () => { const x = await mqotaJson('rollout', 'show', r.id); return x.state === 'completed' ? x : null; }, 30_000, 'completed');
      assert.equal(done.counts.succeeded, 2);
      assert.equal(done.retried, 1);
      const history = done.history.map((h: Json) => h.reason).join('\n');
      assert.match(history, /settings edited by admin: failureThreshold/);
      assert.match(history, /wave 2 of 2 started by admin \(promoted by hand\)/);
      assert.match(history, /retry of 1 failed device\(s\) by admin/);
    } finally {
      await stopFleet(devices);
    }
  });

  test('every command, argument and option has help text; shell completion for bash, zsh and fish', async () => {
    const { program } = await import('../src/cli/program.js');
    const missing: string[] = [];
    const walk = (c: typeof program, at: string): void => {
      if (!c.description()) missing.push(at);
      for (const o of c.options) if (!o.description) missing.push(`${at} ${o.flags}`);
      for (const a of c.registeredArguments) if (!a.description && at !== 'mqota complete') missing.push(`${at} <${a.name()}>`);
      for (const s of c.commands) walk(s, `${at} ${s.name()}`);
    };
    walk(program, 'mqota');
    assert.deepEqual(missing, []);

    for (const shell of ['zsh', 'fish']) assert.match(await mqota('completion', shell), /mqota complete --/);
    assert.match(await mqota('complete', '--', 'rollout', 'pro'), /^promote\t/m);
    assert.match(await mqota('complete', '--', 'rollout', 'edit', 'ro_x', '--wave-d'), /^--wave-deadline\t/m);
    // In bash itself, with bash-completion as a shell has it: the script calls `mqota` by name.
    const bin = path.join(tmp, 'bin');
    await mkdir(bin, { recursive: true });
    await writeFile(path.join(bin, 'mqota'), `#!/bin/sh\nexec "${process.execPath}" "${cli}" "$@"\n`, { mode: 0o755 });
    const script = [
      'source /usr/share/bash-completion/bash_completion', 'source <(mqota completion bash)',
      'COMP_WORDS=(mqota rollout re); COMP_CWORD=2; COMP_LINE="mqota rollout re"; COMP_POINT=${#COMP_LINE}',
      '__mqota_complete 2>/dev/null', 'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join('\n');
    const { stdout } = await run('bash', ['-c', script], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    assert.deepEqual(stdout.trim().split('\n').sort(), ['resume', 'retry']);
  });

  test('device add, certificate and revoke; operator add and revoke', async () => {
    const first = path.join(tmp, 'cl-9-a');
    assert.match(await mqota('device', 'add', 'cl-9', '--type', 'cl', '--out', first), /device cl-9 \(cl\) provisioned/);
    const rotated = await mqotaJson('device', 'certificate', 'cl-9', '--out', path.join(tmp, 'cl-9-b'));
    assert.equal(rotated.bundle.deviceId, 'cl-9');
    const credentials = async (dir: string) => ({ certPem: await readFile(path.join(dir, 'device.crt'), 'utf8'), keyPem: await readFile(path.join(dir, 'device.key'), 'utf8'), caPem: server.pki.caPem });
    const old = await credentials(first);

    const revoked = await mqotaJson('device', 'revoke', 'cl-9', '--serial', new X509Certificate(old.certPem).serialNumber, '--reason', 'lost');
    assert.equal(revoked.revoked.length, 1);
    assert.equal((await connectFailure('cl-9', { port: server.mqota.mqttPort, pki: server.pki, credentials: old })).returnCode, 5);
    (await connectDevice('cl-9', { port: server.mqota.mqttPort, pki: server.pki, credentials: await credentials(path.join(tmp, 'cl-9-b')) })).end(true);
    assert.match(await mqota('device', 'revoke', 'cl-9'), /device cl-9: 1 certificate\(s\) revoked/);
    await assert.rejects(mqota('device', 'revoke', 'cl-9'), (e: any) => /no unrevoked certificate on record.*\(HTTP 409\)/.test(e.stderr));

    await mqota('operator', 'add', 'cl-grafana', '--role', 'monitor', '--out', path.join(tmp, 'cl-grafana'));
    assert.match(await mqota('operator', 'revoke', 'cl-grafana'), /operator cl-grafana: 1 certificate\(s\) revoked/);
  });

  test('login saves a 0600 profile that works from any folder; logout forgets it', async () => {
    const config = await mkdtemp(path.join(os.tmpdir(), 'mqota-xdg-'));
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'mqota-elsewhere-'));
    const env = { XDG_CONFIG_HOME: config };
    const file = path.join(config, 'mqota', 'config.json');
    const url = server.mqota.publicUrl;

    // Not logged in, and not in a server folder: no token, and the error says how to get one.
    const before = await mqotaIn({ cwd: elsewhere, env }, 'firmware', 'list');
    assert.equal(before.code, 1);
    assert.match(before.stderr, /no API token for https:\/\/localhost:8443: run `mqota login`/);

    // A wrong token is refused and nothing is saved.
    const wrong = await mqotaIn({ cwd: elsewhere, env }, 'login', '--server', url, '--ca', server.pki.paths.caCert, '--token', 'not-a-token-0123456789');
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /nothing saved: .*refused the API token \(HTTP 401.*the token came from --token/);
    await assert.rejects(stat(file), { code: 'ENOENT' });

    // The token from a pipe (no terminal), as `echo $TOKEN | mqota login …` gives it.
    const login = await mqotaIn({ cwd: elsewhere, env, input: `${server.config.adminToken}\n` }, 'login', '--server', url, '--ca', server.pki.paths.caCert);
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, new RegExp(`logged in to ${url.replace(/[.]/g, '\\.')} as \\S+ \\(admin\\); profile "default" \\(default\\) saved in ${file}`));
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(path.dirname(file))).mode & 0o777, 0o700);
    const saved = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(saved.defaultProfile, 'default');
    assert.deepEqual(saved.profiles.default, { server: url, token: server.config.adminToken, caPem: server.pki.caPem });

    const listed = await mqotaIn({ cwd: elsewhere, env }, '--json', 'firmware', 'list');
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(JSON.parse(listed.stdout).some((f: Json) => f.type === 'cl'));

    // A second profile, chosen by name; the default stays.
    const second = await mqotaIn({ cwd: elsewhere, env }, 'login', '--profile', 'lab', '--server', url, '--ca', server.pki.paths.caCert, '--token', server.config.adminToken!);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /profile "lab" saved/);
    assert.equal((await mqotaIn({ cwd: elsewhere, env }, '--profile', 'lab', 'device', 'list')).code, 0);
    const unknown = await mqotaIn({ cwd: elsewhere, env }, '--profile', 'nope', 'device', 'list');
    assert.match(unknown.stderr, /no profile "nope" in .*mqota login --profile nope/);

    const out = await mqotaIn({ cwd: elsewhere, env }, 'logout');
    assert.match(out.stdout, /profile "default" \(https:.*\) removed/);
    assert.deepEqual(Object.keys(JSON.parse(await readFile(file, 'utf8')).profiles), ['lab']);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const after = await mqotaIn({ cwd: elsewhere, env }, 'firmware', 'list');
    assert.match(after.stderr, /no API token/);
  });

  test('the environment beats the profile, flags beat the environment; a failed connection names the server and its source', async () => {
    const config = await mkdtemp(path.join(os.tmpdir(), 'mqota-xdg-'));
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'mqota-elsewhere-'));
    const url = server.mqota.publicUrl;
    const dead = `https://127.0.0.1:${await closedPort()}`;
    const file = path.join(config, 'mqota', 'config.json');
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify({ defaultProfile: 'gone', profiles: { gone: { server: dead, token: server.config.adminToken, caPem: server.pki.caPem } } }));
    const env = { XDG_CONFIG_HOME: config };

    const fromProfile = await mqotaIn({ cwd: elsewhere, env }, 'device', 'list');
    assert.equal(fromProfile.code, 1);
    assert.match(fromProfile.stderr, new RegExp(`cannot reach ${dead} \\(server from profile "gone" \\(${file}\\)\\): connection refused.*ECONNREFUSED`));
    assert.match(fromProfile.stderr, /mqota login --server URL --ca FILE.*MQOTA_SERVER/);

    // MQOTA_SERVER beats the profile (its token and CA still come from it).
    const fromEnv = await mqotaIn({ cwd: elsewhere, env: { ...env, MQOTA_SERVER: url } }, '--json', 'device', 'list');
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.equal(JSON.parse(fromEnv.stdout).length >= 4, true);

    // --server beats MQOTA_SERVER, in both directions.
    const flagDead = await mqotaIn({ cwd: elsewhere, env: { ...env, MQOTA_SERVER: url } }, '--server', dead, 'device', 'list');
    assert.match(flagDead.stderr, new RegExp(`cannot reach ${dead} \\(server from --server\\)`));
    const envDead = await mqotaIn({ cwd: elsewhere, env: { ...env, MQOTA_SERVER: dead } }, 'device', 'list');
    assert.match(envDead.stderr, new RegExp(`cannot reach ${dead} \\(server from MQOTA_SERVER\\)`));
    assert.equal((await mqotaIn({ cwd: elsewhere, env: { ...env, MQOTA_SERVER: dead } }, '--server', url, 'device', 'list')).code, 0);

    // A token the server refuses: the error names the server and where the token came from.
    const badToken = await mqotaIn({ cwd: elsewhere, env: { ...env, MQOTA_SERVER: url, MQOTA_TOKEN: 'wrong-token-0123456789' } }, 'device', 'list');
    assert.match(badToken.stderr, new RegExp(`${url.replace(/[.]/g, '\\.')} \\(server from MQOTA_SERVER\\) refused the API token \\(HTTP 401.*the token came from MQOTA_TOKEN`));

    // A CA that did not sign the server certificate: the error names the CA's source.
    const otherCa = path.join(elsewhere, 'other-ca.crt');
    await writeFile(otherCa, server.pki.serverTls.clientCa); // the device CA: a real CA, but not the one that signed the server
    const badCa = await mqotaIn({ cwd: elsewhere, env: { ...env, MQOTA_SERVER: url, MQOTA_CA: otherCa } }, 'device', 'list');
    assert.match(badCa.stderr, new RegExp(`cannot trust ${url.replace(/[.]/g, '\\.')} \\(server from MQOTA_SERVER\\).*the CA came from MQOTA_CA ${otherCa}`));

    // A config file broken by hand: named when it is needed, and no obstacle when every setting is given.
    await writeFile(file, '{ not json');
    assert.match((await mqotaIn({ cwd: elsewhere, env }, 'device', 'list')).stderr, new RegExp(`${file} is not valid JSON`));
    assert.equal((await mqotaIn({ cwd: elsewhere, env }, '--server', url, '--token', server.config.adminToken!, '--ca', server.pki.paths.caCert, 'device', 'list')).code, 0);
  });

  test('device list --wide adds the health columns', async () => {
    const c = await server.device('clh-1');
    await announce(c, 'clh-1', { type: 'clh', version: '1.0.0', slot: 'ota_1',
      health: { rssi: -67, freeHeap: 150 * 1024, minFreeHeap: 100 * 1024, uptimeS: 3725, resetReason: 'task_wdt', elfSha256: 'ab'.repeat(32) } });
    await endAll(c);
    const wide = await mqota('device', 'list', '--type', 'clh', '--wide');
    assert.match(wide, /^ID\s+TYPE\s+VERSION.*LASTSEENAT\s+SLOT\s+RSSI\s+HEAP\s+MINHEAP\s+UPTIME\s+RESET\s+ELF$/m);
    assert.match(wide, /^clh-1\s+clh\s+1\.0\.0\s.*\sota_1\s+-67dBm\s+150K\s+100K\s+1h2m\s+task_wdt\s+abababababab$/m);
    assert.doesNotMatch(await mqota('device', 'list', '--type', 'clh'), /RSSI/);
    assert.equal((await mqotaJson('device', 'list', '--type', 'clh'))[0].health.resetReason, 'task_wdt');
  });

  test('webhook add, list, deliveries and remove', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/hook`;
    const added = await mqota('webhook', 'add', url, '--event', 'device.rolled_back', '--format', 'slack');
    const id = /webhook (wh_[A-Za-z0-9_-]+) added: device\.rolled_back → /.exec(added)?.[1];
    assert.ok(id, added);
    assert.match(added, /signing secret \(shown only now\): [A-Za-z0-9_-]{43}/);
    const all = await mqotaJson('webhook', 'add', url, '--secret', 'my-own-secret-0123456789');
    assert.deepEqual(all.events, ['rollout.state', 'rollout.failure_threshold', 'device.rolled_back', 'device.offline_during_update'], 'all events by default');
    const list = await mqota('webhook', 'list');
    assert.match(list, new RegExp(`^${id}\\s+http://127\\.0\\.0\\.1:\\d+/hook\\s+slack\\s+device\\.rolled_back\\s+admin`, 'm'));
    assert.doesNotMatch(list, /my-own-secret/);
    assert.equal((await mqota('webhook', 'deliveries', id!)).trim(), '(none)');
    await assert.rejects(mqota('webhook', 'add', url, '--event', 'nope'), (e: any) => /argument 'nope' is invalid/.test(e.stderr));
    assert.match(await mqota('webhook', 'remove', id!), new RegExp(`webhook ${id} removed`));
    await mqota('webhook', 'remove', all.id);
    await assert.rejects(mqota('webhook', 'deliveries', id!), (e: any) => /webhook .* not found.*\(HTTP 404\)/i.test(e.stderr));
  });
});
