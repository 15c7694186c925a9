import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  APP_DESC,
  ESP_IMAGE_HEADER_BYTES,
  chipIdOf,
  chipName,
  parseEspAppImage,
  type EspAppImage,
} from '../src/firmware/esp-image.js';
import { compareVersions, normaliseVersion, resolveFirmwareIdentity } from '../src/firmware/version.js';
import { CHIP_IDS, buildEspAppImage } from '../src/firmware/test-image.js';

const ARDUINO_VERSION = 'heads/idf-release/v4.4-0-gd4572';

/**
 * Walks an image the way the bootloader does (esp_image_format.c), written
 * independently of the builder: word-wise XOR seeded 0xEF folded to a byte,
 * checksum as the last byte of a 16-byte block, optional SHA-256 after it.
 */
function verifyImageStructure(image: Buffer): { segments: number; dataBytes: number } {
  assert.equal(image[0], 0xe9, 'image magic');
  const segments = image[1];
  let offset = 24;
  let checksumWord = 0xef;
  let dataBytes = 0;
  for (let i = 0; i < segments; i++) {
    const dataLen = image.readUInt32LE(offset + 4);
    assert.equal(dataLen % 4, 0, `segment ${i} length is word-aligned`);
    offset += 8;
    for (let w = 0; w < dataLen; w += 4) checksumWord = (checksumWord ^ image.readUInt32LE(offset + w)) >>> 0;
    offset += dataLen;
    dataBytes += dataLen;
  }
  const padded = (offset + 1 + 15) & ~15;
  const calc = (checksumWord >>> 24) ^ ((checksumWord >>> 16) & 0xff) ^ ((checksumWord >>> 8) & 0xff) ^ (checksumWord & 0xff);
  assert.equal(image[padded - 1], calc, 'checksum byte');
  for (let p = offset; p < padded - 1; p++) assert.equal(image[p], 0, 'padding is zero');
  if (image[23] === 1) {
    assert.equal(image.length, padded + 32, 'image length with appended hash');
    const digest = createHash('sha256').update(image.subarray(0, padded)).digest();
    assert.deepEqual(image.subarray(padded), digest, 'appended SHA-256');
  } else {
    assert.equal(image.length, padded, 'image length without hash');
  }
  return { segments, dataBytes };
}

describe('buildEspAppImage produces the documented format', () => {
  test('default image: one segment, checksum, padding and appended hash', () => {
    const image = buildEspAppImage({ projectName: 'thermostat', version: '1.3.0' });
    const { segments, dataBytes } = verifyImageStructure(image);
    assert.equal(segments, 1);
    assert.equal(dataBytes, 256 + 4096);
    assert.equal(image.length % 16, 0);
  });

  test('two segments, no hash, payload rounded up to a word', () => {
    const image = buildEspAppImage({
      projectName: 'p',
      version: '1.0.0',
      segmentCount: 2,
      hashAppended: false,
      payloadBytes: 1001,
    });
    const { segments, dataBytes } = verifyImageStructure(image);
    assert.equal(segments, 2);
    assert.equal(dataBytes, 256 + 1004);
  });

  test('payload of zero bytes still yields a valid image', () => {
    verifyImageStructure(buildEspAppImage({ projectName: 'p', version: '1.0.0', payloadBytes: 0 }));
  });

  test('deterministic, and two versions or seeds differ', () => {
    const a = buildEspAppImage({ projectName: 'thermostat', version: '1.3.0' });
    assert.deepEqual(buildEspAppImage({ projectName: 'thermostat', version: '1.3.0' }), a);
    const b = buildEspAppImage({ projectName: 'thermostat', version: '1.3.1' });
    assert.notDeepEqual(b.subarray(ESP_IMAGE_HEADER_BYTES, 1024), a.subarray(ESP_IMAGE_HEADER_BYTES, 1024));
    const c = buildEspAppImage({ projectName: 'thermostat', version: '1.3.0', seed: 'other' });
    assert.notDeepEqual(c.subarray(ESP_IMAGE_HEADER_BYTES, 1024), a.subarray(ESP_IMAGE_HEADER_BYTES, 1024));
  });

  test('rejects strings that do not fit their field', () => {
    assert.throws(() => buildEspAppImage({ projectName: 'x'.repeat(33), version: '1.0.0' }), RangeError);
    assert.throws(() => buildEspAppImage({ projectName: 'p', version: '1.0.0', compileDate: 'x'.repeat(17) }), RangeError);
  });
});

describe('parseEspAppImage', () => {
  const cases: Array<{ chip: string; version: string; secureVersion: number }> = [
    { chip: 'esp32', version: '1.3.0', secureVersion: 0 },
    { chip: 'esp32s3', version: '2.0.0-rc.1', secureVersion: 3 },
    { chip: 'esp32c3', version: '0.0.1+build.7', secureVersion: 0xffffffff },
    { chip: 'esp32c6', version: '10.20.30', secureVersion: 1 },
    { chip: 'esp32p4', version: '1.0.0', secureVersion: 2 },
    { chip: 'esp32c61', version: '3.1.4', secureVersion: 0 },
  ];
  for (const c of cases) {
    test(`round trip: ${c.chip} ${c.version}`, () => {
      const image = buildEspAppImage({
        projectName: `proj-${c.chip}`,
        version: c.version,
        chipId: CHIP_IDS[c.chip],
        secureVersion: c.secureVersion,
        idfVersion: 'v5.4.2-dirty',
        minChipRevFull: 101,
        maxChipRevFull: 199,
        compileTime: '09:08:07',
        compileDate: 'Mar  5 2026',
        seed: c.chip,
      });
      const expected: EspAppImage = {
        chip: c.chip,
        chipId: CHIP_IDS[c.chip],
        projectName: `proj-${c.chip}`,
        version: c.version,
        idfVersion: 'v5.4.2-dirty',
        secureVersion: c.secureVersion,
        compileTime: '09:08:07',
        compileDate: 'Mar  5 2026',
        elfSha256: createHash('sha256').update(`elf:${c.chip}`).digest('hex'),
        minChipRevFull: 101,
        maxChipRevFull: 199,
        hashAppended: true,
        segmentCount: 1,
      };
      assert.deepEqual(parseEspAppImage(image), expected);
      // Only the first ESP_IMAGE_HEADER_BYTES are needed.
      assert.deepEqual(parseEspAppImage(image.subarray(0, ESP_IMAGE_HEADER_BYTES)), expected);
    });
  }

  test('defaults: esp32, IDF v5.5.1, hash appended; segment count and hash flag read', () => {
    const parsed = parseEspAppImage(
      buildEspAppImage({ projectName: 'p', version: '1.0.0', segmentCount: 2, hashAppended: false }),
    );
    assert.ok(parsed);
    assert.equal(parsed.chip, 'esp32');
    assert.equal(parsed.chipId, 0);
    assert.equal(parsed.idfVersion, 'v5.5.1');
    assert.equal(parsed.segmentCount, 2);
    assert.equal(parsed.hashAppended, false);
    assert.equal(parsed.elfSha256.length, 64);
  });

  test('an unknown chip id is reported, not rejected', () => {
    const parsed = parseEspAppImage(buildEspAppImage({ projectName: 'p', version: '1.0.0', chipId: 0x1234 }));
    assert.equal(parsed?.chip, 'unknown-4660');
    assert.equal(parsed?.chipId, 0x1234);
  });

  test('Arduino-style version string is read verbatim', () => {
    const parsed = parseEspAppImage(
      buildEspAppImage({ projectName: 'arduino-lib-builder', version: ARDUINO_VERSION, idfVersion: 'v4.4.7' }),
    );
    assert.equal(parsed?.projectName, 'arduino-lib-builder');
    assert.equal(parsed?.version, ARDUINO_VERSION);
    assert.equal(parsed?.idfVersion, 'v4.4.7');
  });

  test('a string that fills its field without a NUL is read whole, not past it', () => {
    const version = '1.0.0-' + 'a'.repeat(26); // exactly 32 bytes
    const parsed = parseEspAppImage(buildEspAppImage({ projectName: 'x'.repeat(32), version }));
    assert.equal(parsed?.version, version);
    assert.equal(parsed?.projectName, 'x'.repeat(32));
  });

  test('multi-byte UTF-8 is kept', () => {
    const parsed = parseEspAppImage(buildEspAppImage({ projectName: 'thermostat-süd', version: '1.0.0' }));
    assert.equal(parsed?.projectName, 'thermostat-süd');
  });

  test('invalid UTF-8 or control characters blank that field only', () => {
    const image = buildEspAppImage({ projectName: 'thermostat', version: '1.0.0' });
    const bad = Buffer.from(image);
    bad[APP_DESC.offset + APP_DESC.projectName + 2] = 0xff; // not UTF-8
    bad[APP_DESC.offset + APP_DESC.idfVer + 1] = 0x07; // BEL
    bad[APP_DESC.offset + APP_DESC.time] = 0xc3; // truncated two-byte sequence before NUL
    bad[APP_DESC.offset + APP_DESC.time + 1] = 0x00;
    const parsed = parseEspAppImage(bad);
    assert.ok(parsed);
    assert.equal(parsed.projectName, '');
    assert.equal(parsed.idfVersion, '');
    assert.equal(parsed.compileTime, '');
    assert.equal(parsed.version, '1.0.0');
    assert.equal(parsed.compileDate, 'Jan  1 2026');
  });

  test('bytes after a NUL are ignored', () => {
    const image = Buffer.from(buildEspAppImage({ projectName: 'ab', version: '1.0.0' }));
    image[APP_DESC.offset + APP_DESC.projectName + 5] = 0xff;
    assert.equal(parseEspAppImage(image)?.projectName, 'ab');
  });

  describe('not an image → null', () => {
    const good = buildEspAppImage({ projectName: 'thermostat', version: '1.3.0' });

    test('the reference image parses (so the cases below fail for their own reason)', () => {
      assert.notEqual(parseEspAppImage(good), null);
    });

    test('empty', () => {
      assert.equal(parseEspAppImage(Buffer.alloc(0)), null);
    });

    test('truncated at and around every structure boundary', () => {
      for (const length of [1, 4, 23, 24, 25, 31, 32, 35, 36, 48, 144, 255, 287]) {
        assert.equal(parseEspAppImage(good.subarray(0, length)), null, `length ${length}`);
      }
      assert.notEqual(parseEspAppImage(good.subarray(0, 288)), null);
    });

    test('wrong image magic', () => {
      const bad = Buffer.from(good);
      bad[0] = 0xe8;
      assert.equal(parseEspAppImage(bad), null);
    });

    test('right image magic, wrong app description magic', () => {
      for (const at of [0, 1, 2, 3]) {
        const bad = Buffer.from(good);
        bad[APP_DESC.offset + at] ^= 0x01;
        assert.equal(parseEspAppImage(bad), null, `byte ${at}`);
      }
    });

    test('segment count outside 1..16', () => {
      for (const count of [0, 17, 255]) {
        const bad = Buffer.from(good);
        bad[1] = count;
        assert.equal(parseEspAppImage(bad), null, `count ${count}`);
      }
      const sixteen = Buffer.from(good);
      sixteen[1] = 16;
      assert.equal(parseEspAppImage(sixteen)?.segmentCount, 16);
    });

    test('first segment too short to hold the app description', () => {
      const bad = Buffer.from(good);
      bad.writeUInt32LE(255, 28);
      assert.equal(parseEspAppImage(bad), null);
    });

    test('random bytes, including with the right first byte', () => {
      for (let i = 0; i < 200; i++) {
        const bytes = randomBytes(ESP_IMAGE_HEADER_BYTES + (i % 64));
        if (i % 2 === 0) bytes[0] = 0xe9;
        assert.equal(parseEspAppImage(bytes), null);
      }
    });

    test('a bootloader-like image with no app description', () => {
      const other = Buffer.from(good);
      other.fill(0, APP_DESC.offset, APP_DESC.offset + 256);
      assert.equal(parseEspAppImage(other), null);
    });

    test('not a Buffer at all', () => {
      for (const value of [undefined, null, 'e9', 42, {}, new Uint8Array(good)]) {
        assert.equal(parseEspAppImage(value as unknown as Buffer), null);
      }
    });
  });

  test('never throws on mutated images', () => {
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.from(good288());
      for (let j = 0; j < 1 + (i % 8); j++) bytes[(i * 131 + j * 977) % bytes.length] = (i * 7 + j) & 0xff;
      assert.doesNotThrow(() => parseEspAppImage(bytes.subarray(0, bytes.length - (i % 3))));
    }
  });
});

function good288(): Buffer {
  return buildEspAppImage({ projectName: 'fuzz', version: '1.0.0' }).subarray(0, ESP_IMAGE_HEADER_BYTES);
}

describe('chip table', () => {
  // esp_chip_id_t, components/bootloader_support/include/esp_app_format.h
  const expected: Array<[number, string]> = [
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
  ];

  test('chipName matches esp_chip_id_t', () => {
    for (const [id, name] of expected) assert.equal(chipName(id), name);
  });

  test('test support uses the same ids, and chipIdOf inverts chipName', () => {
    assert.deepEqual(Object.entries(CHIP_IDS).sort((a, b) => a[1] - b[1]), expected.map(([id, n]) => [n, id]));
    for (const [id, name] of expected) assert.equal(chipIdOf(name), id);
    assert.equal(chipIdOf('esp8266'), undefined);
  });

  test('ids not in the table, including ESP_CHIP_ID_INVALID and esp_chip_model_t numbering', () => {
    assert.equal(chipName(1), 'unknown-1'); // CHIP_ESP32 in esp_chip_model_t, not an image chip id
    assert.equal(chipName(0xffff), 'unknown-65535');
  });
});

describe('normaliseVersion', () => {
  const valid: Array<[string, string]> = [
    ['1.2.3', '1.2.3'],
    ['v1.2.3', '1.2.3'],
    ['0.0.0', '0.0.0'],
    ['1.2.3-rc.1', '1.2.3-rc.1'],
    ['v1.2.3-alpha.beta.1', '1.2.3-alpha.beta.1'],
    ['1.2.0+abc', '1.2.0+abc'],
    ['v1.2.0-rc.1+build.5.sha-1f2e', '1.2.0-rc.1+build.5.sha-1f2e'],
    ['9007199254740991.0.0', '9007199254740991.0.0'],
  ];
  for (const [input, out] of valid) {
    test(`accepts ${JSON.stringify(input)}`, () => assert.equal(normaliseVersion(input), out));
  }

  const invalid = [
    '',
    'v',
    '1.2',
    '1',
    '01.2.3',
    '1.02.3',
    '1.2.3-01',
    ' 1.2.3',
    '1.2.3 ',
    'vv1.2.3',
    'V1.2.3',
    '=1.2.3',
    '1.2.3.4',
    '1.2.3-',
    '1.2.3+',
    '1.2.3+a..b',
    '99999999999999999999.0.0',
    `1.2.3-${'a'.repeat(300)}`,
    ARDUINO_VERSION,
  ];
  for (const input of invalid) {
    test(`rejects ${JSON.stringify(input.length > 40 ? input.slice(0, 40) + '…' : input)}`, () =>
      assert.equal(normaliseVersion(input), null));
  }

  test('non-string input', () => {
    assert.equal(normaliseVersion(undefined as unknown as string), null);
    assert.equal(normaliseVersion(123 as unknown as string), null);
  });
});

describe('compareVersions', () => {
  test('pre-release sorts before its release; build metadata is ignored', () => {
    assert.equal(compareVersions('1.0.0-rc.1', '1.0.0'), -1);
    assert.equal(compareVersions('1.0.0-alpha', '1.0.0-alpha.1'), -1);
    assert.equal(compareVersions('1.0.0-rc.2', '1.0.0-rc.10'), -1);
    assert.equal(compareVersions('1.10.0', '1.9.0'), 1);
    assert.equal(compareVersions('1.0.0+a', '1.0.0+b'), 0);
  });
});

describe('resolveFirmwareIdentity', () => {
  const image = (projectName: string, version: string): EspAppImage => {
    const parsed = parseEspAppImage(buildEspAppImage({ projectName, version }));
    assert.ok(parsed);
    return parsed;
  };
  const thermostat = image('thermostat', '1.3.0');
  const arduino = image('arduino-lib-builder', ARDUINO_VERSION);

  test('type and version default to the image', () => {
    assert.deepEqual(resolveFirmwareIdentity({}, thermostat), {
      ok: true,
      type: 'thermostat',
      version: '1.3.0',
      buildId: null,
    });
  });

  test('empty form fields count as absent', () => {
    assert.deepEqual(resolveFirmwareIdentity({ type: '', version: '' }, thermostat), {
      ok: true,
      type: 'thermostat',
      version: '1.3.0',
      buildId: null,
    });
  });

  test('the form type overrides the project name', () => {
    const r = resolveFirmwareIdentity({ type: 'hall-thermostat' }, thermostat);
    assert.deepEqual(r, { ok: true, type: 'hall-thermostat', version: '1.3.0', buildId: null });
  });

  test('a form version equal to the image version, with or without v', () => {
    for (const version of ['1.3.0', 'v1.3.0']) {
      const r = resolveFirmwareIdentity({ version }, thermostat);
      assert.deepEqual(r, { ok: true, type: 'thermostat', version: '1.3.0', buildId: null });
    }
  });

  test("the image's v-prefixed version is normalised", () => {
    const r = resolveFirmwareIdentity({}, image('thermostat', 'v2.0.0-rc.1+g1a2b'));
    assert.deepEqual(r, { ok: true, type: 'thermostat', version: '2.0.0-rc.1+g1a2b', buildId: null });
  });

  test('version-mismatch names both versions', () => {
    const r = resolveFirmwareIdentity({ version: '1.4.0' }, thermostat);
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.equal(r.code, 'version-mismatch');
    assert.match(r.message, /1\.4\.0/);
    assert.match(r.message, /1\.3\.0/);
  });

  test('build metadata is part of the identity: 1.3.0+x differs from 1.3.0', () => {
    const r = resolveFirmwareIdentity({ version: '1.3.0+x' }, thermostat);
    assert.equal(r.ok ? 'ok' : r.code, 'version-mismatch');
  });

  test('non-semver image version: the form must give one, and the image string is the build id', () => {
    const missing = resolveFirmwareIdentity({}, arduino);
    assert.equal(missing.ok ? 'ok' : missing.code, 'version-required');
    assert.ok(!missing.ok && missing.message.includes(ARDUINO_VERSION));

    assert.deepEqual(resolveFirmwareIdentity({ type: 'thermostat', version: 'v2.1.0' }, arduino), {
      ok: true,
      type: 'thermostat',
      version: '2.1.0',
      buildId: ARDUINO_VERSION,
    });
  });

  test('no image: both fields required, no build id', () => {
    const noVersion = resolveFirmwareIdentity({ type: 'thermostat' }, null);
    assert.equal(noVersion.ok ? 'ok' : noVersion.code, 'version-required');
    const noType = resolveFirmwareIdentity({ version: '1.0.0' }, null);
    assert.equal(noType.ok ? 'ok' : noType.code, 'type-required');
    assert.deepEqual(resolveFirmwareIdentity({ type: 'thermostat', version: '1.0.0' }, null), {
      ok: true,
      type: 'thermostat',
      version: '1.0.0',
      buildId: null,
    });
  });

  test('an image whose project name is empty needs a form type', () => {
    const blank: EspAppImage = { ...thermostat, projectName: '' };
    const r = resolveFirmwareIdentity({}, blank);
    assert.equal(r.ok ? 'ok' : r.code, 'type-required');
  });

  test('invalid-version for a form version that is not semver, with or without an image', () => {
    for (const img of [null, thermostat, arduino]) {
      const r = resolveFirmwareIdentity({ type: 't', version: '1.3' }, img);
      assert.equal(r.ok ? 'ok' : r.code, 'invalid-version');
    }
  });

  test('invalid-type from the form or from the project name', () => {
    for (const type of ['a b', '../x', 'x'.repeat(65), 'ünï', 'a/b']) {
      const r = resolveFirmwareIdentity({ type }, thermostat);
      assert.equal(r.ok ? 'ok' : r.code, 'invalid-type', type);
    }
    const r = resolveFirmwareIdentity({}, { ...thermostat, projectName: 'my project' });
    assert.equal(r.ok ? 'ok' : r.code, 'invalid-type');
    assert.ok(resolveFirmwareIdentity({ type: 'A_z.0-9' + 'x'.repeat(57) }, thermostat).ok);
  });
});
