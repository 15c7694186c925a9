// What the CLI writes for a device or a claim batch: the PEM files, device.json (read by the Linux
// device) and nvs.csv, the input of ESP-IDF's nvs_partition_gen.py (components/nvs_flash/
// nvs_partition_generator): header `key,type,encoding,value`, a `namespace` row first, then
// `data` rows and `file` rows whose value is a path relative to where the generator runs (the
// bundle folder). NVS keys are at most 15 characters (NVS_KEY_NAME_MAX_SIZE - 1).
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** The NVS namespace the ESP-IDF agent reads (esp32/components/ota_agent/port/esp_idf/device_identity.cpp). */
export const NVS_NAMESPACE = 'mqota';
/** Size of the `nvs` partition in esp32/partitions.csv, for the generator's size argument. */
export const NVS_PARTITION_SIZE = '0x6000';

export interface DeviceBundleFiles {
  deviceId: string;
  type: string | null;
  brokerUrl: string;
  certPem: string;
  /** Null when the device made its own key (CSR): no device.key, no client_key in NVS. */
  keyPem: string | null;
  caPem: string;
  /** The command key's public half: with it, the device acts only on update commands the server signed. */
  commandKeyPem?: string | null;
  /** Digests of the image signing keys the Linux device accepts (an ESP32 takes them from eFuse). */
  imageKeyDigests?: string[];
}

export interface ClaimBundleFiles {
  claimId: string;
  type: string | null;
  brokerUrl: string;
  certPem: string;
  keyPem: string;
  caPem: string;
  expiresAt: string;
  maxDevices: number;
  commandKeyPem?: string | null;
  imageKeyDigests?: string[];
}

async function writeSecret(file: string, text: string): Promise<void> {
  await writeFile(file, text, { mode: 0o600 });
  await chmod(file, 0o600);
}

function csv(rows: string[][]): string {
  // Values here never hold a comma or a quote (ids, URLs, file names), so no quoting is needed.
  return [['key', 'type', 'encoding', 'value'], ...rows].map((r) => r.join(',')).join('\n') + '\n';
}

/** The NVS rows of a device bundle, in nvs_partition_gen.py's CSV format. */
export function deviceNvsCsv(b: { deviceId: string; brokerUrl: string; ownKey: boolean; commandKey?: boolean }): string {
  return csv([
    [NVS_NAMESPACE, 'namespace', '', ''],
    ['device_id', 'data', 'string', b.deviceId],
    ['broker_uri', 'data', 'string', b.brokerUrl],
    ['client_cert', 'file', 'string', 'device.crt'],
    ...(b.ownKey ? [] : [['client_key', 'file', 'string', 'device.key']]),
    ['ca_cert', 'file', 'string', 'ca.crt'],
    ...(b.commandKey ? [['command_key', 'file', 'string', 'command-key.pem']] : []),
  ]);
}

/** The NVS rows of a claim bundle: no device id and no device certificate; the device claims them on first boot. */
export function claimNvsCsv(b: { claimId: string; brokerUrl: string; commandKey?: boolean }): string {
  return csv([
    [NVS_NAMESPACE, 'namespace', '', ''],
    ['claim_id', 'data', 'string', b.claimId],
    ['broker_uri', 'data', 'string', b.brokerUrl],
    ['claim_cert', 'file', 'string', 'claim.crt'],
    ['claim_key', 'file', 'string', 'claim.key'],
    ['ca_cert', 'file', 'string', 'ca.crt'],
    ...(b.commandKey ? [['command_key', 'file', 'string', 'command-key.pem']] : []),
  ]);
}

/** The command that turns a bundle's nvs.csv into a partition image, run in the bundle folder. */
export const NVS_GENERATE_COMMAND = `python $IDF_PATH/components/nvs_flash/nvs_partition_generator/nvs_partition_gen.py generate nvs.csv nvs.bin ${NVS_PARTITION_SIZE}`;

export async function writeDeviceBundle(dir: string, b: DeviceBundleFiles): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(path.join(dir, 'device.crt'), b.certPem);
  if (b.keyPem !== null) await writeSecret(path.join(dir, 'device.key'), b.keyPem);
  await writeFile(path.join(dir, 'ca.crt'), b.caPem);
  if (b.commandKeyPem) await writeFile(path.join(dir, 'command-key.pem'), b.commandKeyPem);
  await writeFile(path.join(dir, 'device.json'), `${JSON.stringify({
    deviceId: b.deviceId, type: b.type, brokerUrl: b.brokerUrl, ...(b.imageKeyDigests?.length ? { imageKeyDigests: b.imageKeyDigests } : {}),
  }, null, 2)}\n`);
  // Per-device secrets live in NVS, not in the firmware.
  await writeFile(path.join(dir, 'nvs.csv'), deviceNvsCsv({ deviceId: b.deviceId, brokerUrl: b.brokerUrl, ownKey: b.keyPem === null, commandKey: Boolean(b.commandKeyPem) }));
}

export async function writeClaimBundle(dir: string, b: ClaimBundleFiles): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(path.join(dir, 'claim.crt'), b.certPem);
  await writeSecret(path.join(dir, 'claim.key'), b.keyPem);
  await writeFile(path.join(dir, 'ca.crt'), b.caPem);
  if (b.commandKeyPem) await writeFile(path.join(dir, 'command-key.pem'), b.commandKeyPem);
  await writeFile(path.join(dir, 'claim.json'), `${JSON.stringify({
    claimId: b.claimId, type: b.type, brokerUrl: b.brokerUrl, expiresAt: b.expiresAt, maxDevices: b.maxDevices,
    ...(b.imageKeyDigests?.length ? { imageKeyDigests: b.imageKeyDigests } : {}),
  }, null, 2)}\n`);
  await writeFile(path.join(dir, 'nvs.csv'), claimNvsCsv({ claimId: b.claimId, brokerUrl: b.brokerUrl, commandKey: Boolean(b.commandKeyPem) }));
}
