// The one configuration loader: environment variables, validated once at start.
import os from 'node:os';
import path from 'node:path';
import { envSchema } from 'env-schema';
import { Type, type Static } from 'typebox';

const Port = (dflt?: number) => Type.Integer({ minimum: 0, maximum: 65535, ...(dflt === undefined ? {} : { default: dflt }) });

const EnvSchema = Type.Object({
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  MQOTA_DATA_DIR: Type.String({ default: './data', minLength: 1 }),
  MQOTA_CERTS_DIR: Type.String({ default: './certs', minLength: 1 }),
  MQOTA_HOST: Type.String({ default: '0.0.0.0', minLength: 1 }),
  MQTT_PORT: Port(8883),
  MQTT_PLAINTEXT_PORT: Type.Optional(Port()),
  MQTT_MAX_PACKET_BYTES: Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024, default: 64 * 1024 }),
  MQTT_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 300_000, default: 10_000 }),
  MQTT_MAX_CONNECTIONS: Type.Optional(Type.Integer({ minimum: 1 })),
  HTTPS_PORT: Port(8443),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https://[^/?#]+(/[^?#]*)?$' })),
  MQOTA_ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  MQOTA_HOSTNAMES: Type.String({ default: '', pattern: '^[A-Za-z0-9.:,\\- ]*$' }),
  MQOTA_MAX_IMAGE_BYTES: Type.Integer({ minimum: 1, maximum: 1024 * 1024 * 1024, default: 16 * 1024 * 1024 }),
  MQOTA_ROLLOUT_TICK_MS: Type.Integer({ minimum: 20, maximum: 60_000, default: 1000 }),
  MQOTA_DB_BACKLOG_ROWS: Type.Integer({ minimum: 100, maximum: 10_000_000, default: 20_000 }),
  MQOTA_IMAGE_CACHE_BYTES: Type.Integer({ minimum: 0, maximum: 16 * 1024 * 1024 * 1024, default: 64 * 1024 * 1024 }),
  MQOTA_IMAGE_ACCESS: Type.Union([Type.Literal('certificate'), Type.Literal('public')], { default: 'certificate' }),
  MQOTA_RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 60_000 }),
  MQOTA_RATE_LIMIT_TOKEN_MAX: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 3000 }),
  MQOTA_RATE_LIMIT_FAILED_AUTH_MAX: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 30 }),
  MQOTA_INSTANCE_ID: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' })),
  MQOTA_HEAP_GROWING_PERCENT: Type.Integer({ minimum: 0, maximum: 400, default: 100 }),
  MQOTA_VERSION_SAMPLE_MS: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 600_000 }),
  MQOTA_WEBHOOK_ALLOW_HTTP: Type.Boolean({ default: false }),
  MQOTA_WEBHOOK_ALLOW_PRIVATE: Type.Boolean({ default: false }),
  MQOTA_REQUIRE_SIGNED_IMAGES: Type.Boolean({ default: false }),
  MQOTA_SIGN_COMMANDS: Type.Boolean({ default: true }),
  MQOTA_COMMAND_TTL_SECONDS: Type.Integer({ minimum: 60, maximum: 30 * 86_400, default: 86_400 }),
  MQOTA_BROKER: Type.Union([Type.Literal('embedded'), Type.Literal('external')], { default: 'embedded' }),
  MQOTA_BROKER_URL: Type.Optional(Type.String({ pattern: '^mqtts://[^/?#]+/?$' })),
  MQOTA_BROKER_CA: Type.Optional(Type.String({ minLength: 1 })),
  MQOTA_SERVICE_ID: Type.String({ default: 'mqota', pattern: '^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$' }),
  MQOTA_BROKER_SESSION_EXPIRY_S: Type.Integer({ minimum: 60, maximum: 4_294_967_295, default: 7 * 24 * 3600 }),
  MQOTA_BROKER_CONFIG_DIR: Type.Optional(Type.String({ minLength: 1 })),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
  LOG_FORMAT: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('pretty')])),
});

export interface Config {
  databaseUrl: string | null;
  dataDir: string;
  certsDir: string;
  host: string;
  mqttPort: number;
  mqttPlaintextPort: number | null;
  mqttMaxPacketBytes: number;
  /** A TLS connection that has not sent CONNECT this long after its accept is closed. */
  mqttConnectTimeoutMs: number;
  /** Device connections held at most; null: the open-file limit minus a reserve (broker/connection-limit.ts). */
  mqttMaxConnections: number | null;
  httpsPort: number;
  /** Base of image links sent to devices; derived from the host name and bound port when unset. */
  publicUrl: string | null;
  adminToken: string | null;
  hostnames: string[];
  maxImageBytes: number;
  /** How often rollouts are re-evaluated (waves, schedule, timeouts, rate-limited sends). */
  rolloutTickMs: number;
  /** Rows waiting for a commit past which device messages wait (unacknowledged) and no new commands go out. */
  dbBacklogRows: number;
  /** Who may download images: a device with its client certificate or a token holder, or anyone (a CDN or mirror in front). */
  imageAccess: 'certificate' | 'public';
  /** Memory for whole images served from RAM (image-cache.ts); 0: every download streams from disk. */
  imageCacheBytes: number;
  /** The API's rate-limit window, and the requests allowed in it per valid token and per address without one. */
  rateLimitWindowMs: number;
  rateLimitTokenMax: number;
  rateLimitFailedAuthMax: number;
  /** This instance's name among several over one PostgreSQL (logs, the change feed); host name and pid when unset. */
  instanceId: string;
  /** How far V8's old generation grows past its live size before a full collection (src/heap-tuning.ts); 0: V8's own. */
  heapGrowingPercent: number;
  /** How often the versions per type are sampled for the dashboard's versions-over-time chart. */
  versionSampleMs: number;
  /** Webhook receivers may be plain http:// URLs, and on loopback/private/link-local addresses (SSRF guard off). */
  webhookAllowHttp: boolean;
  webhookAllowPrivate: boolean;
  /** Refuse uploads that no registered, active signing key signed (src/firmware/image-signatures.ts). */
  requireSignedImages: boolean;
  /** Sign update commands with the command key (src/protocol/command-signature.ts); bundles then carry its public half. */
  signCommands: boolean;
  /** How long a signed update command stays valid for the device. */
  commandTtlSeconds: number;
  /** Where devices connect: the embedded broker, or an external one mqota is a client of (src/device-link/). */
  broker: BrokerConfig;
  logLevel: string;
  logFormat: 'json' | 'pretty';
}

export type BrokerConfig =
  | { mode: 'embedded' }
  | {
    mode: 'external';
    /** mqtts://host:port of the external broker, for mqota and for devices. */
    url: string;
    /** PEM file of the CA that signed the external broker's server certificate; null: mqota's own server CA. */
    caFile: string | null;
    /** This instance's client id and service certificate CN. */
    serviceId: string;
    /** How long the broker keeps mqota's session (and queues device messages for it) while mqota is away. */
    sessionExpirySeconds: number;
    /** Where `mqota broker config` wrote the broker's files; mqota keeps their ACL and CRL current. */
    configDir: string | null;
  };

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  let raw: Static<typeof EnvSchema>;
  try {
    // An empty variable (VAR= or compose's ${VAR:-}) means "not set", not "set to nothing".
    const data = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
    raw = envSchema<Static<typeof EnvSchema>>({ schema: EnvSchema, data });
  } catch (err) {
    // Ajv says "env/MQTT_PORT must be <= 65535"; name the variable the way the README does.
    throw new ConfigError(`invalid configuration: ${(err as Error).message.replace(/env\//g, '')}`);
  }
  return {
    databaseUrl: raw.DATABASE_URL ?? null,
    dataDir: path.resolve(raw.MQOTA_DATA_DIR),
    certsDir: path.resolve(raw.MQOTA_CERTS_DIR),
    host: raw.MQOTA_HOST,
    mqttPort: raw.MQTT_PORT,
    mqttPlaintextPort: raw.MQTT_PLAINTEXT_PORT ?? null,
    mqttMaxPacketBytes: raw.MQTT_MAX_PACKET_BYTES,
    mqttConnectTimeoutMs: raw.MQTT_CONNECT_TIMEOUT_MS,
    mqttMaxConnections: raw.MQTT_MAX_CONNECTIONS ?? null,
    httpsPort: raw.HTTPS_PORT,
    publicUrl: raw.PUBLIC_URL ? raw.PUBLIC_URL.replace(/\/+$/, '') : null,
    adminToken: raw.MQOTA_ADMIN_TOKEN ?? null,
    hostnames: raw.MQOTA_HOSTNAMES.split(',').map((h) => h.trim()).filter(Boolean),
    maxImageBytes: raw.MQOTA_MAX_IMAGE_BYTES,
    rolloutTickMs: raw.MQOTA_ROLLOUT_TICK_MS,
    dbBacklogRows: raw.MQOTA_DB_BACKLOG_ROWS,
    imageAccess: raw.MQOTA_IMAGE_ACCESS,
    imageCacheBytes: raw.MQOTA_IMAGE_CACHE_BYTES,
    rateLimitWindowMs: raw.MQOTA_RATE_LIMIT_WINDOW_MS,
    rateLimitTokenMax: raw.MQOTA_RATE_LIMIT_TOKEN_MAX,
    rateLimitFailedAuthMax: raw.MQOTA_RATE_LIMIT_FAILED_AUTH_MAX,
    instanceId: raw.MQOTA_INSTANCE_ID ?? `${os.hostname()}-${process.pid}`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64),
    heapGrowingPercent: raw.MQOTA_HEAP_GROWING_PERCENT,
    versionSampleMs: raw.MQOTA_VERSION_SAMPLE_MS,
    webhookAllowHttp: raw.MQOTA_WEBHOOK_ALLOW_HTTP,
    webhookAllowPrivate: raw.MQOTA_WEBHOOK_ALLOW_PRIVATE,
    requireSignedImages: raw.MQOTA_REQUIRE_SIGNED_IMAGES,
    signCommands: raw.MQOTA_SIGN_COMMANDS,
    commandTtlSeconds: raw.MQOTA_COMMAND_TTL_SECONDS,
    broker: brokerConfig(raw),
    logLevel: raw.LOG_LEVEL,
    logFormat: raw.LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json'),
  };
}

function brokerConfig(raw: Static<typeof EnvSchema>): BrokerConfig {
  if (raw.MQOTA_BROKER === 'embedded') {
    for (const name of ['MQOTA_BROKER_URL', 'MQOTA_BROKER_CA', 'MQOTA_BROKER_CONFIG_DIR'] as const) {
      if (raw[name] !== undefined) throw new ConfigError(`invalid configuration: ${name} is set but MQOTA_BROKER is embedded; set MQOTA_BROKER=external to use an external broker`);
    }
    return { mode: 'embedded' };
  }
  if (!raw.MQOTA_BROKER_URL) throw new ConfigError('invalid configuration: MQOTA_BROKER=external needs MQOTA_BROKER_URL (mqtts://host:port)');
  return {
    mode: 'external',
    url: raw.MQOTA_BROKER_URL.replace(/\/$/, ''),
    caFile: raw.MQOTA_BROKER_CA ? path.resolve(raw.MQOTA_BROKER_CA) : null,
    serviceId: raw.MQOTA_SERVICE_ID,
    sessionExpirySeconds: raw.MQOTA_BROKER_SESSION_EXPIRY_S,
    configDir: raw.MQOTA_BROKER_CONFIG_DIR ? path.resolve(raw.MQOTA_BROKER_CONFIG_DIR) : null,
  };
}

/** The link base devices download images from. */
export function publicBaseUrl(config: Config, boundHttpsPort: number): string {
  if (config.publicUrl) return config.publicUrl;
  const host = config.hostnames[0] ?? os.hostname();
  return `https://${host.includes(':') ? `[${host}]` : host}:${boundHttpsPort}`;
}
