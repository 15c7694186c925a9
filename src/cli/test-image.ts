// `mqota firmware make-test-image`: a synthetic but structurally valid ESP-IDF application image
// (src/firmware/test-image.ts) for trying mqota without hardware, e.g. with `mqota simulate`.
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Command, Option } from 'commander';
import { buildEspAppImage, CHIP_IDS } from '../firmware/test-image.js';
import { normaliseVersion } from '../firmware/version.js';

const wholeNumber = (name: string, max: number) => (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) > max) throw new Error(`--${name} must be a whole number up to ${max}`);
  return Number(v);
};

export function registerMakeTestImage(firmware: Command, print: (value: unknown, text: () => string) => void): void {
  firmware.command('make-test-image')
    .description('write a synthetic ESP-IDF application image (valid headers, app description, checksum and hash; it does not boot)')
    .requiredOption('--type <type>', 'firmware type (the image\'s project name)')
    .requiredOption('--version <semver>', 'the image\'s own version')
    .addOption(new Option('--chip <chip>', 'target chip of the image header').choices(Object.keys(CHIP_IDS)).default('esp32'))
    .option('--out <file>', 'output file (default ./<type>-<version>.bin)')
    .option('--size <bytes>', 'payload bytes after the app description', wholeNumber('size', 64 * 1024 * 1024), 4096)
    .option('--secure-version <n>', 'anti-rollback secure version', wholeNumber('secure-version', 0xffffffff))
    .action(async (o: { type: string; version: string; chip: string; out?: string; size: number; secureVersion?: number }) => {
      if (!/^[A-Za-z0-9_.-]{1,32}$/.test(o.type)) throw new Error(`--type '${o.type}': letters, digits, '_', '.', '-', at most 32 characters`);
      if (!normaliseVersion(o.version)) throw new Error(`--version '${o.version}' is not a semantic version`);
      const image = buildEspAppImage({ projectName: o.type, version: o.version, chipId: CHIP_IDS[o.chip], payloadBytes: o.size, secureVersion: o.secureVersion });
      const file = path.resolve(o.out ?? `${o.type}-${o.version}.bin`);
      await writeFile(file, image);
      const sha256 = createHash('sha256').update(image).digest('hex');
      print({ path: file, type: o.type, version: o.version, chip: o.chip, size: image.length, sha256 }, () =>
        `wrote ${file}: ${o.type} ${o.version} for ${o.chip}, ${image.length} bytes, sha256 ${sha256}\n  upload it with: mqota firmware upload ${path.relative(process.cwd(), file) || file}`);
    });
}
