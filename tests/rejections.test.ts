// Device message rejections: every one counted by reason and published as an event, but logged
// at most once per device per minute (time passed in, not waited for).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { FleetEvents } from '../src/events.js';
import { DeviceMessageRejections } from '../src/protocol/rejections.js';

test('counted per reason, published, and logged once per device per minute', () => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const events = new FleetEvents(logger);
  const seen: string[] = [];
  events.on('rejection', (e) => seen.push(`${e.deviceId}:${e.reason}`));
  let now = 1_000_000;
  const rejections = new DeviceMessageRejections({ events, logger, now: () => now });

  for (let i = 0; i < 100; i++) rejections.reject('noisy', 'malformed-status', 'payload is not JSON');
  rejections.reject('quiet', 'type-mismatch', 'announced type b, registered as a');
  assert.equal(rejections.snapshot().get('malformed-status'), 100);
  assert.equal(rejections.snapshot().get('type-mismatch'), 1);
  assert.equal(seen.length, 101, 'every rejection is an event');
  assert.deepEqual(lines.map((l) => l.deviceId), ['noisy', 'quiet'], 'one line per device');

  now += 59_999;
  rejections.reject('noisy', 'malformed-status', 'payload is not JSON');
  assert.equal(lines.length, 2, 'still within the minute');
  now += 1;
  rejections.reject('noisy', 'unknown-update', 'unknown updateId u_x');
  assert.equal(lines.length, 3);
  assert.equal(lines[2].reason, 'unknown-update');
  assert.equal(lines[2].suppressedSinceLastLine, 100, 'the next line says how many were not logged');
});
