// Identifies an ESP-IDF application image from its first bytes, so an upload
// can be checked against what it claims to be before any device sees it.
//
// Layout, from espressif/esp-idf (master, 2026-07):
//   components/bootloader_support/include/esp_app_format.h
//     esp_image_header_t (24 bytes, packed)          lines 82-108
//     esp_image_segment_header_t (8 bytes)           lines 118-121
//     esp_chip_id_t                                   lines 19-34
//   components/esp_app_format/include/esp_app_desc.h
//     esp_app_desc_t (256 bytes)                      lines 26-42
// The app description sits at the start of segment 0, right after the two
// headers: esp_ota_get_partition_description() reads it at
// sizeof(esp_image_header_t) + sizeof(esp_image_segment_header_t) = 32
// (components/app_update/esp_ota_ops.c).

const IMAGE_HEADER_MAGIC = 0xe9; // ESP_IMAGE_HEADER_MAGIC
const APP_DESC_MAGIC = 0xabcd5432; // ESP_APP_DESC_MAGIC_WORD
const MAX_SEGMENTS = 16; // ESP_IMAGE_MAX_SEGMENTS

const IMAGE_HEADER_BYTES = 24;
const SEGMENT_HEADER_BYTES = 8;
const APP_DESC_BYTES = 256;
const APP_DESC_OFFSET = IMAGE_HEADER_BYTES + SEGMENT_HEADER_BYTES;

/** Bytes needed to identify an image: image header + first segment header + app description. */
export const ESP_IMAGE_HEADER_BYTES = APP_DESC_OFFSET + APP_DESC_BYTES; // 288

/** Field offsets within esp_image_header_t. */
export const IMAGE_HEADER = {
  magic: 0,
  segmentCount: 1,
  spiMode: 2,
  spiSpeedSize: 3, // spi_speed:4 (low nibble), spi_size:4 (high nibble)
  entryAddr: 4,
  wpPin: 8,
  spiPinDrv: 9, // [3]
  chipId: 12, // uint16 LE, esp_chip_id_t
  minChipRev: 14,
  minChipRevFull: 15, // uint16 LE
  maxChipRevFull: 17, // uint16 LE
  reserved: 19, // [4]
  hashAppended: 23,
} as const;

/** Field offsets within esp_image_segment_header_t, relative to its start (offset 24). */
export const SEGMENT_HEADER = { loadAddr: 0, dataLen: 4 } as const;

/** Field offsets within esp_app_desc_t, relative to its start (offset 32). */
export const APP_DESC = {
  offset: APP_DESC_OFFSET,
  magicWord: 0,
  secureVersion: 4,
  reserv1: 8, // uint32[2]
  version: 16, // char[32]
  projectName: 48, // char[32]
  time: 80, // char[16]
  date: 96, // char[16]
  idfVer: 112, // char[32]
  appElfSha256: 144, // uint8[32]
  minEfuseBlkRevFull: 176, // uint16
  maxEfuseBlkRevFull: 178, // uint16
  mmuPageSize: 180, // uint8, log2
  spiFlashMode: 181, // uint8, added after IDF v5.5 (was reserv3[0]); 0 = not recorded
  reserv2: 184, // uint32[18]
} as const;

// esp_chip_id_t. Not the same numbering as esp_chip_model_t in esp_chip_info.h
// (there CHIP_ESP32 = 1; the image header uses 0).
const CHIP_NAMES: ReadonlyMap<number, string> = new Map([
  [0x0000, 'esp32'],
  [0x0002, 'esp32s2'],
  [0x0005, 'esp32c3'],
  [0x0009, 'esp32s3'],
  [0x000c, 'esp32c2'],
  [0x000d, 'esp32c6'],
  [0x0010, 'esp32h2'],
  [0x0012, 'esp32p4'],
  [0x0014, 'esp32c61'],
  [0x0017, 'esp32c5'],
  [0x0019, 'esp32h21'],
  [0x001c, 'esp32h4'],
  [0x0020, 'esp32s31'],
]);

export interface EspAppImage {
  /** Target name as ESP-IDF spells IDF_TARGET ('esp32', 'esp32c3', ...), or `unknown-<id>`. */
  chip: string;
  chipId: number;
  projectName: string;
  version: string;
  idfVersion: string;
  secureVersion: number;
  compileTime: string;
  compileDate: string;
  /** SHA-256 of the application ELF, lowercase hex. */
  elfSha256: string;
  /** major * 100 + minor */
  minChipRevFull: number;
  maxChipRevFull: number;
  hashAppended: boolean;
  segmentCount: number;
}

export function chipName(chipId: number): string {
  return CHIP_NAMES.get(chipId) ?? `unknown-${chipId}`;
}

/** The esp_chip_id_t for a target name, or undefined. */
export function chipIdOf(name: string): number | undefined {
  for (const [id, chip] of CHIP_NAMES) if (chip === name) return id;
  return undefined;
}

/**
 * Null when the bytes are not an ESP-IDF application image (wrong magics, too
 * short, impossible segment layout). Never throws.
 */
export function parseEspAppImage(head: Buffer): EspAppImage | null {
  if (!Buffer.isBuffer(head) || head.length < ESP_IMAGE_HEADER_BYTES) return null;
  if (head[IMAGE_HEADER.magic] !== IMAGE_HEADER_MAGIC) return null;

  const segmentCount = head[IMAGE_HEADER.segmentCount];
  if (segmentCount < 1 || segmentCount > MAX_SEGMENTS) return null;

  // The app description is the first thing in segment 0, so that segment must hold it whole.
  const firstSegmentLen = head.readUInt32LE(IMAGE_HEADER_BYTES + SEGMENT_HEADER.dataLen);
  if (firstSegmentLen < APP_DESC_BYTES) return null;

  const desc = head.subarray(APP_DESC_OFFSET, APP_DESC_OFFSET + APP_DESC_BYTES);
  if (desc.readUInt32LE(APP_DESC.magicWord) !== APP_DESC_MAGIC) return null;

  const chipId = head.readUInt16LE(IMAGE_HEADER.chipId);
  return {
    chip: chipName(chipId),
    chipId,
    projectName: cString(desc, APP_DESC.projectName, 32),
    version: cString(desc, APP_DESC.version, 32),
    idfVersion: cString(desc, APP_DESC.idfVer, 32),
    secureVersion: desc.readUInt32LE(APP_DESC.secureVersion),
    compileTime: cString(desc, APP_DESC.time, 16),
    compileDate: cString(desc, APP_DESC.date, 16),
    elfSha256: desc.subarray(APP_DESC.appElfSha256, APP_DESC.appElfSha256 + 32).toString('hex'),
    minChipRevFull: head.readUInt16LE(IMAGE_HEADER.minChipRevFull),
    maxChipRevFull: head.readUInt16LE(IMAGE_HEADER.maxChipRevFull),
    hashAppended: head[IMAGE_HEADER.hashAppended] === 1,
    segmentCount,
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// C0 controls, DEL and C1 controls: never part of a version or name a person typed.
const NON_PRINTABLE = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * A NUL-terminated string inside a fixed-size field. IDF only asserts that the
 * value fits the field, so a string may fill it with no terminator.
 * Invalid UTF-8 or control characters give '' rather than garbage.
 */
function cString(buf: Buffer, offset: number, size: number): string {
  const field = buf.subarray(offset, offset + size);
  const nul = field.indexOf(0);
  const bytes = nul === -1 ? field : field.subarray(0, nul);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return '';
  }
  return NON_PRINTABLE.test(text) ? '' : text;
}
