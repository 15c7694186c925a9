// GET /api/events.
import { Type } from 'typebox';
import { MONITOR_EVENT_TYPES } from '../../monitoring/monitor-events.js';
import { DeviceId, Id } from './common.js';

export const EventsQuery = Type.Object({
  rolloutId: Type.Optional(Id),
  deviceId: Type.Optional(DeviceId),
  types: Type.Optional(Type.String({ pattern: '^[a-z]+(,[a-z]+)*$', maxLength: 200, description: `comma-separated: ${MONITOR_EVENT_TYPES.join(', ')}` })),
}, { additionalProperties: false });
