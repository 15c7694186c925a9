// Writes a synthetic ESP-IDF application image (see ./esp-image.ts) to a file.
//
//   npx tsx tests/support/make-esp-image.ts --project thermostat --version 1.3.0 --out x.bin \
//     [--chip esp32|<esp_chip_id_t number>] [--secure-version N] [--size BYTES] \
//     [--idf-version v5.5.1] [--seed STRING]
//
// --size is the segment payload after the app description; the file is that
// plus 288 bytes of headers, up to 16 of padding and checksum, and 32 of hash.
// Prints {"path","size","sha256"} as one JSON line.
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { buildEspAppImage, CHIP_IDS } from './esp-image.js';

const USAGE =
  'usage: make-esp-image --project NAME --version VERSION --out FILE ' +
  '[--chip esp32] [--secure-version N] [--size BYTES] [--idf-version v5.5.1] [--seed STRING]';

function fail(message: string): never {
  process.stderr.write(`make-esp-image: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function wholeNumber(name: string, value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) > max) fail(`--${name} must be a whole number up to ${max}`);
  return Number(value);
}

let args;
try {
  args = parseArgs({
    options: {
      project: { type: 'string' },
      version: { type: 'string' },
      out: { type: 'string' },
      chip: { type: 'string', default: 'esp32' },
      'secure-version': { type: 'string' },
      size: { type: 'string' },
      'idf-version': { type: 'string' },
      seed: { type: 'string' },
    },
    strict: true,
  }).values;
} catch (err) {
  fail((err as Error).message);
}

const { project, version, out, chip } = args;
if (!project || !version || !out) fail('--project, --version and --out are required');

const chipId = Object.hasOwn(CHIP_IDS, chip)
  ? CHIP_IDS[chip]
  : /^\d+$/.test(chip)
    ? wholeNumber('chip', chip, 0xffff)
    : fail(`unknown chip "${chip}"; one of ${Object.keys(CHIP_IDS).join(', ')} or an esp_chip_id_t number`);

let image: Buffer;
try {
  image = buildEspAppImage({
    projectName: project,
    version,
    chipId,
    secureVersion: wholeNumber('secure-version', args['secure-version'], 0xffffffff),
    payloadBytes: wholeNumber('size', args.size, 64 * 1024 * 1024),
    idfVersion: args['idf-version'],
    seed: args.seed,
  });
} catch (err) {
  fail((err as Error).message);
}

await writeFile(out, image);
const sha256 = createHash('sha256').update(image).digest('hex');
process.stdout.write(`${JSON.stringify({ path: out, size: image.length, sha256 })}\n`);
