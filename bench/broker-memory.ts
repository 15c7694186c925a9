// Server memory per connected TLS device: the broker runs in this process, devices connect
// from a child process (so their memory is not counted), each with its own certificate, a
// persistent session and a subscription to its command topic, as real devices do.
//
//   node --expose-gc --import tsx bench/broker-memory.ts [--devices 2000] [--warmup 200] [--bare | --tls-only]
//
// The figure is a slope: memory after `warmup` devices, then after `devices` more, divided by
// `devices`. One-time costs (V8's young generation growing, mqtt-packet's 65536-entry message-id
// buffer cache, compiled code) land in the warm-up and are reported apart.
// --bare measures plain Aedes behind a Node TLS server with default options, for comparison.
// --tls-only measures the floor: mutual-TLS sockets with the broker's TLS options (no session
// tickets) and nothing on them, no MQTT at all; the clients only handshake.
// --exchange: each device also publishes an announce-sized message at QoS 1 and gets a
// command-sized one back, as every device does once it is online; what that leaves behind on each
// connection is counted with the rest. With --tls-only the same sizes go over the bare TLS socket.

import { fork } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { constants as cryptoConstants } from 'node:crypto';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Aedes } from 'aedes';
import { MqttClient } from 'mqtt';
import pino from 'pino';
import { startBroker } from '../broker/index.js';
import { ensurePki, issueClientCertificate } from '../certs/pki.js';
import { topics } from '../src/topics.js';
import { connectTls, deviceSecureContext } from '../src/simulation/mqtt-device.js';
import { MEMORY_SETTLE_MS } from './machine.js';

interface Credentials {
  id: string;
  cert: string;
  key: string;
}

const self = fileURLToPath(import.meta.url);

// The sizes of a device's announce with its health report and of a signed update command.
const ANNOUNCE_PAYLOAD = Buffer.alloc(260, 'a');
const COMMAND_PAYLOAD = Buffer.alloc(520, 'c');

if (process.argv.includes('--client')) {
  await runClients();
} else {
  await runServer();
}

async function runServer(): Promise<void> {
  const { values } = parseArgs({
    options: { devices: { type: 'string', default: '2000' }, warmup: { type: 'string', default: '200' }, bare: { type: 'boolean', default: false }, 'tls-only': { type: 'boolean', default: false }, exchange: { type: 'boolean', default: false }, client: { type: 'boolean' } },
  });
  const devices = Number(values.devices);
  const warmup = Number(values.warmup);
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc --import tsx');

  const dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-bench-'));
  try {
    const { paths } = await ensurePki({ dir: path.join(dir, 'pki') });
    const credentials: Credentials[] = [];
    for (let i = 0; i < warmup + devices; i++) {
      const id = `bench-${i}`;
      const c = await issueClientCertificate(paths, { id, role: 'device' });
      credentials.push({ id, cert: c.certPem, key: c.keyPem });
    }
    const [key, cert, clientCa, caPem] = await Promise.all([paths.serverKey, paths.serverCert, paths.deviceCaCert, paths.caCert].map((p) => readFile(p, 'utf8')));

    let port: number;
    let connected: () => number;
    let sendCommand: ((id: string) => Promise<void>) | null = null;
    let close: () => Promise<void>;
    const tlsOnly = values['tls-only'];
    if (tlsOnly) {
      const held = new Set<tls.TLSSocket>();
      const server = tls.createServer(
        { key, cert, ca: clientCa, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2', secureOptions: cryptoConstants.SSL_OP_NO_TICKET },
        (socket) => {
          held.add(socket);
          socket.on('error', () => undefined);
          // --exchange: a command-sized answer to the device's first bytes, as the broker's would be.
          if (values.exchange) socket.once('data', () => socket.write(COMMAND_PAYLOAD));
        },
      );
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
      connected = () => held.size;
      close = async () => {
        for (const s of held) s.destroy();
        await new Promise((resolve) => server.close(resolve));
      };
    } else if (values.bare) {
      const aedes = await Aedes.createBroker();
      const server = tls.createServer({ key, cert, ca: clientCa, requestCert: true, rejectUnauthorized: true }, aedes.handle);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
      connected = () => aedes.connectedClients;
      if (values.exchange) {
        sendCommand = (id) => new Promise<void>((resolve, reject) => aedes.publish(
          { cmd: 'publish', topic: topics.command(id), payload: COMMAND_PAYLOAD, qos: 1, retain: false, dup: false },
          (err) => (err ? reject(err) : resolve()),
        ));
      }
      close = async () => {
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        await new Promise((resolve) => server.close(resolve));
      };
    } else {
      const broker = await startBroker({ port: 0, host: '127.0.0.1', tls: { key, cert, clientCa }, logger: pino({ level: 'warn' }) });
      port = broker.port;
      connected = () => broker.connectedDevices();
      close = () => broker.close();
      if (values.exchange) sendCommand = (id) => broker.publish(topics.command(id), COMMAND_PAYLOAD, { qos: 1 });
    }

    // RSS read MEMORY_SETTLE_MS after the collections (machine.ts); `rssAtOnce`: 250 ms after them.
    const settle = async () => {
      for (let i = 0; i < 4; i++) {
        gc();
        await sleep(250);
      }
      const rssAtOnce = process.memoryUsage().rss;
      await sleep(MEMORY_SETTLE_MS);
      return { ...process.memoryUsage(), rssAtOnce };
    };
    const child = fork(self, ['--client'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('exit', (code) => {
      if (code) console.error(`client process exited with ${code}`);
    });
    const connectMore = async (batch: Credentials[]) => {
      const target = connected() + batch.length;
      const started = Date.now();
      // A device that never got through would leave the client process silent: fail, not hang.
      const reply = () => new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the client process did not answer within 180 s')), 180_000);
        child.once('message', () => { clearTimeout(timer); resolve(); });
      });
      let replied = reply();
      child.send({ port, caPem, credentials: batch, tlsOnly, exchange: values.exchange });
      await replied;
      while (connected() < target) {
        if (Date.now() - started > 120_000) throw new Error(`only ${connected()} of ${target} connected`);
        await sleep(100);
      }
      if (sendCommand) {
        replied = reply();
        child.send({ commands: batch.length });
        for (const c of batch) await sendCommand(c.id);
        await replied;
      }
      await sleep(500);
      return (Date.now() - started) / 1000;
    };

    const baseline = await settle();
    await connectMore(credentials.slice(0, warmup));
    const warm = await settle();
    const seconds = await connectMore(credentials.slice(warmup));
    const loaded = await settle();

    const perDevice = (k: 'rss' | 'rssAtOnce' | 'heapUsed' | 'heapTotal' | 'external') => ((loaded[k] - warm[k]) / devices / 1024).toFixed(1);
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    console.log(
      JSON.stringify({
        mode: `${tlsOnly ? 'mutual TLS only, no MQTT' : values.bare ? 'bare aedes + tls' : 'mqota broker'}${values.exchange ? ', one message each way' : ''}`,
        devices,
        warmup,
        connectSeconds: Number(seconds.toFixed(1)),
        perDeviceKiB: { rss: perDevice('rss'), rssAtOnce: perDevice('rssAtOnce'), heapUsed: perDevice('heapUsed'), heapTotal: perDevice('heapTotal'), external: perDevice('external') },
        warmupMiB: { rss: mib(warm.rss - baseline.rss), heapUsed: mib(warm.heapUsed - baseline.heapUsed) },
        node: process.version,
      }),
    );
    child.kill();
    await close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function runClients(): Promise<void> {
  const clients: (MqttClient | tls.TLSSocket)[] = [];
  // Commands received, and the parent's wait for a number of them (--exchange).
  let commands = 0;
  let awaited: { count: number; done: () => void } | null = null;
  const commandArrived = () => {
    commands++;
    if (awaited && commands >= awaited.count) { awaited.done(); awaited = null; }
  };
  const handshakeOnly = (port: number, caPem: string, c: Credentials, exchange: boolean) =>
    new Promise<void>((resolve, reject) => {
      const socket = connectTls({ host: '127.0.0.1', port }, deviceSecureContext({ ca: caPem, cert: c.cert, key: c.key }));
      socket.once('secureConnect', () => {
        if (!exchange) return resolve();
        socket.once('data', () => resolve());
        socket.write(ANNOUNCE_PAYLOAD);
      });
      clients.push(socket);
      socket.once('error', reject);
    });
  const connectOne = (port: number, caPem: string, c: Credentials, exchange: boolean) =>
    new Promise<void>((resolve, reject) => {
      // As the bench's fleet connects: mqtt.js over a socket with a device's key-exchange groups.
      const context = deviceSecureContext({ ca: caPem, cert: c.cert, key: c.key });
      const client = new MqttClient(() => connectTls({ host: '127.0.0.1', port }, context), {
        clientId: c.id,
        clean: false,
        protocolVersion: 4,
        reconnectPeriod: 0,
        keepalive: 120,
      });
      clients.push(client);
      client.on('message', commandArrived);
      client.once('close', () => reject(new Error(`${c.id}: connection closed before it was subscribed`)));
      client.once('connect', () => {
        client.subscribe(topics.command(c.id), { qos: 1 }, (err) => {
          if (err) reject(err);
          else if (!exchange) resolve();
          else client.publish(topics.announce(c.id), ANNOUNCE_PAYLOAD, { qos: 1 }, (e) => (e ? reject(e) : resolve()));
        });
      });
      client.once('error', reject);
    });
  let expected = 0;
  process.on('message', async (m) => {
    if ('commands' in (m as object)) {
      expected += (m as { commands: number }).commands;
      if (commands >= expected) process.send!('received');
      else awaited = { count: expected, done: () => process.send!('received') };
      return;
    }
    const { port, caPem, credentials, tlsOnly, exchange } = m as { port: number; caPem: string; credentials: Credentials[]; tlsOnly: boolean; exchange: boolean };
    const one = (c: Credentials) => (tlsOnly ? handshakeOnly(port, caPem, c, exchange) : connectOne(port, caPem, c, exchange));
    // A few at a time, like a fleet coming back after an outage, without a thundering herd.
    for (let i = 0; i < credentials.length; i += 50) await Promise.all(credentials.slice(i, i + 50).map(one));
    process.send!('connected');
  });
  await new Promise(() => undefined); // killed by the parent
}
