// The benchmark's firmware: synthetic ESP-IDF images of one type, uploaded through the API.
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ApiClient } from '../src/cli/api-client.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';

export const FIRMWARE_TYPE = 'bench';

export interface FirmwareView { id: string; type: string; version: string; sha256: string; size: number; url: string }

/** Builds `bench` <version> in `dir`, uploads it and checks the server read the image's own type and version. */
export async function uploadFirmware(api: ApiClient, dir: string, version: string): Promise<FirmwareView> {
  const file = path.join(dir, `${FIRMWARE_TYPE}-${version}.bin`);
  await writeFile(file, buildEspAppImage({ projectName: FIRMWARE_TYPE, version, payloadBytes: 4096 }));
  const fw = await api.uploadFirmware<FirmwareView>(file, {});
  await rm(file);
  if (fw.type !== FIRMWARE_TYPE || fw.version !== version) throw new Error(`uploaded firmware is ${fw.type} ${fw.version}`);
  return fw;
}
