// Synthetic ESP-IDF application images for `mqota firmware make-test-image`
// (demos with a simulated fleet), the tests and the benchmark.
//
// Real, and checked by the bootloader's rules (components/bootloader_support/
// src/esp_image_format.c):
// - esp_image_header_t (24 bytes), one or two esp_image_segment_header_t +
//   data, esp_app_desc_t at offset 32 (start of segment 0), all little-endian;
// - every segment's data_len is a multiple of 4 ("unaligned segment length");
// - zero padding so that the checksum byte ends a 16-byte block, and the
//   checksum is the XOR of all segment data bytes seeded with 0xEF
//   (ESP_ROM_CHECKSUM_INITIAL; the bootloader XORs words and folds the word to
//   a byte, which is the same value esptool gets XORing bytes);
// - with hash_appended = 1, the SHA-256 of everything before it is appended,
//   as esptool's elf2image does by default for apps.
// Simplified: segment data is deterministic pseudo-random bytes, not code; the
// load and entry addresses are ESP32 ones whatever the chip; app_elf_sha256 is
// a hash of the project, version and seed, not of an ELF file; there is no
// secure-boot signature block. Nothing here boots, but everything that
// parses or verifies an image's structure accepts it.
import { createCipheriv, createHash } from 'node:crypto';

export const CHIP_IDS: Record<string, number> = {
  esp32: 0x0000,
  esp32s2: 0x0002,
  esp32c3: 0x0005,
  esp32s3: 0x0009,
  esp32c2: 0x000c,
  esp32c6: 0x000d,
  esp32h2: 0x0010,
  esp32p4: 0x0012,
  esp32c61: 0x0014,
  esp32c5: 0x0017,
  esp32h21: 0x0019,
  esp32h4: 0x001c,
  esp32s31: 0x0020,
};

export interface BuildEspImageOptions {
  projectName: string;
  version: string;
  /** default 'v5.5.1' */
  idfVersion?: string;
  /** esp_chip_id_t; default 0 = esp32 */
  chipId?: number;
  secureVersion?: number;
  /** Extra segment data after the app description (rounded up to 4); default 4096. */
  payloadBytes?: number;
  /** Changes the payload and ELF hash; default derived from project + version. */
  seed?: string;
  /** 1 (default) or 2: the second segment takes half the payload. */
  segmentCount?: 1 | 2;
  /** default true, as IDF app builds do */
  hashAppended?: boolean;
  /** default 0 */
  minChipRevFull?: number;
  /** default 399 (v3.99, ESP32's maximum) */
  maxChipRevFull?: number;
  /** __TIME__ style, default '12:00:00' */
  compileTime?: string;
  /** __DATE__ style, default 'Jan  1 2026' */
  compileDate?: string;
}

const IMAGE_HEADER_MAGIC = 0xe9;
const APP_DESC_MAGIC = 0xabcd5432;
const CHECKSUM_SEED = 0xef;
const DROM_LOAD_ADDR = 0x3f400020; // ESP32 flash-mapped data, where the app desc lives
const IRAM_LOAD_ADDR = 0x40080000;
const ENTRY_ADDR = 0x40081000;

export function buildEspAppImage(o: BuildEspImageOptions): Buffer {
  const seed = o.seed ?? `${o.projectName}@${o.version}`;
  const segmentCount = o.segmentCount ?? 1;
  const payloadBytes = align(o.payloadBytes ?? 4096, 4);
  const payload = pseudoRandomBytes(`payload:${seed}`, payloadBytes);

  const appDesc = buildAppDesc(o, seed);
  let segments: Array<{ loadAddr: number; data: Buffer }>;
  if (segmentCount === 2) {
    const split = align(Math.floor(payloadBytes / 2), 4);
    segments = [
      { loadAddr: DROM_LOAD_ADDR, data: Buffer.concat([appDesc, payload.subarray(0, split)]) },
      { loadAddr: IRAM_LOAD_ADDR, data: payload.subarray(split) },
    ];
  } else {
    segments = [{ loadAddr: DROM_LOAD_ADDR, data: Buffer.concat([appDesc, payload]) }];
  }

  const header = Buffer.alloc(24);
  header[0] = IMAGE_HEADER_MAGIC;
  header[1] = segments.length;
  header[2] = 2; // spi_mode DIO
  header[3] = (2 << 4) | 0; // spi_size 4MB (high nibble), spi_speed DIV_2 (low nibble)
  header.writeUInt32LE(ENTRY_ADDR, 4);
  header[8] = 0xee; // wp_pin: disabled, as the IDF bootloader writes it
  // spi_pin_drv[3] = 0
  header.writeUInt16LE(o.chipId ?? CHIP_IDS.esp32, 12);
  const minRevFull = o.minChipRevFull ?? 0;
  header[14] = Math.floor(minRevFull / 100); // legacy min_chip_rev: the major revision
  header.writeUInt16LE(minRevFull, 15);
  header.writeUInt16LE(o.maxChipRevFull ?? 399, 17);
  // reserved[4] = 0
  const hashAppended = o.hashAppended ?? true;
  header[23] = hashAppended ? 1 : 0;

  const parts: Buffer[] = [header];
  let checksum = CHECKSUM_SEED;
  for (const segment of segments) {
    const segmentHeader = Buffer.alloc(8);
    segmentHeader.writeUInt32LE(segment.loadAddr, 0);
    segmentHeader.writeUInt32LE(segment.data.length, 4);
    parts.push(segmentHeader, segment.data);
    for (let i = 0; i < segment.data.length; i++) checksum ^= segment.data[i];
  }

  const unpadded = parts.reduce((n, p) => n + p.length, 0);
  const tail = Buffer.alloc(align(unpadded + 1, 16) - unpadded);
  tail[tail.length - 1] = checksum;
  parts.push(tail);

  const image = Buffer.concat(parts);
  if (!hashAppended) return image;
  return Buffer.concat([image, createHash('sha256').update(image).digest()]);
}

function buildAppDesc(o: BuildEspImageOptions, seed: string): Buffer {
  const desc = Buffer.alloc(256);
  desc.writeUInt32LE(APP_DESC_MAGIC, 0);
  desc.writeUInt32LE(o.secureVersion ?? 0, 4);
  // reserv1[2] = 0
  writeCString(desc, 16, 32, o.version, 'version');
  writeCString(desc, 48, 32, o.projectName, 'projectName');
  writeCString(desc, 80, 16, o.compileTime ?? '12:00:00', 'compileTime');
  writeCString(desc, 96, 16, o.compileDate ?? 'Jan  1 2026', 'compileDate');
  writeCString(desc, 112, 32, o.idfVersion ?? 'v5.5.1', 'idfVersion');
  createHash('sha256').update(`elf:${seed}`).digest().copy(desc, 144);
  desc.writeUInt16LE(0, 176); // min_efuse_blk_rev_full
  desc.writeUInt16LE(99, 178); // max_efuse_blk_rev_full
  desc[180] = 16; // mmu_page_size: log2(64 KiB)
  // spi_flash_mode (181) = 0: "not recorded", as images from IDF v5.x carry
  return desc;
}

/** IDF asserts the value fits its field; a value that fills it has no NUL, which is legal. */
function writeCString(buf: Buffer, offset: number, size: number, value: string, field: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > size) throw new RangeError(`${field} is ${bytes.length} bytes; the field holds ${size}`);
  bytes.copy(buf, offset);
}

/** AES-256-CTR keystream keyed by the seed: deterministic and fast enough for 16 MiB images. */
function pseudoRandomBytes(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
