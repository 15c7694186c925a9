// Shapes every resource uses: ids, timestamps, error answers. A route declares
// `schema: { tags, summary, params/querystring/body, response }` with these; plugins/external/swagger.ts
// adds the bearer security and the 401/403 answers of /api routes.
import { Type, type TSchema } from 'typebox';
import { DEVICE_ID_PATTERN } from '../../../certs/identity.js';
import { ATTEMPT_STATES, ROLLOUT_STATES } from '../../rollouts/states.js';

export const DeviceId = Type.String({ pattern: DEVICE_ID_PATTERN.source, description: 'device id (certificate CN)' });
export const FirmwareType = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' });
export const Id = Type.String({ minLength: 1, maxLength: 80, pattern: '^[A-Za-z0-9_-]+$' });

/** States as src/rollouts/states.ts names them, so the OpenAPI document lists them and answers are checked against them. */
export const AttemptState = Type.String({ enum: [...ATTEMPT_STATES], description: 'update attempt state' });
export const RolloutState = Type.String({ enum: [...ROLLOUT_STATES], description: 'rollout state' });

export const IdParams = Type.Object({ id: Id });
export const DeviceParams = Type.Object({ id: DeviceId });

/** A timestamp: a Date in handlers, an ISO 8601 string on the wire. */
export const DateTime = Type.Unsafe<Date | string>(Type.String({ format: 'date-time' }));
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const ErrorResponse = Type.Object({
  statusCode: Type.Integer(), error: Type.String(), message: Type.String(),
}, { description: 'the request failed; `message` says why' });

/** Error answers of a route, for its `response`: `...errors(400, 404)`. */
export const errors = (...codes: Array<400 | 401 | 403 | 404 | 409 | 413 | 415 | 429 | 503 | 507>) =>
  Object.fromEntries(codes.map((code) => [code, Type.Object(ErrorResponse.properties, { description: ERROR_DESCRIPTIONS[code] })])) as Record<number, typeof ErrorResponse>;

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'invalid request', 401: 'no valid bearer token', 403: 'the token\'s role does not allow this', 404: 'not found',
  409: 'conflicts with the current state', 413: 'too large', 415: 'unsupported media type',
  429: 'over the rate limit (MQOTA_RATE_LIMIT_*); `Retry-After` says in how many seconds to try again', 503: 'unavailable',
  507: 'the server has no storage left for it',
};

/** A 204 answer: no body (documented without content). */
export const NoContent = (description: string) => Type.Unsafe<undefined>({ type: 'null', description });
