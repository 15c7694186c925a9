// GET /api/events: the fleet events as server-sent events, for the dashboard and scripts,
// optionally narrowed to one rollout, one device and some event types.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { FleetEventName } from '../../../events.js';
import { EventStream } from '../../../monitoring/event-stream.js';
import { MONITOR_EVENT_TYPES, toMonitorEvent } from '../../../monitoring/monitor-events.js';
import { HttpError } from '../../errors.js';
import { errors, EventsQuery } from '../../schemas/index.js';

export async function eventRoutes(fastify: FastifyInstance): Promise<void> {
  const { services } = fastify;
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const open = new Set<EventStream>();
  // An open stream is never idle, so the server would wait for it forever on close.
  app.addHook('preClose', async () => { for (const stream of open) stream.end(); });

  app.get('/events', {
    schema: {
      tags: ['monitoring'], summary: 'Fleet events as server-sent events',
      description: '`event: <type>` and `data: <json>` per event, a comment every 15 s; `rolloutId`, `deviceId` and `types` narrow the stream (AND).',
      querystring: EventsQuery,
      response: { 200: { description: 'the event stream', content: { 'text/event-stream': { schema: Type.String() } } }, ...errors(400) },
    },
  }, async (req, reply) => {
    const { rolloutId, deviceId } = req.query;
    const types = req.query.types ? [...new Set(req.query.types.split(','))] : MONITOR_EVENT_TYPES;
    const unknown = types.filter((t) => !MONITOR_EVENT_TYPES.includes(t as FleetEventName));
    if (unknown.length) throw new HttpError(400, `unknown event types: ${unknown.join(', ')} (known: ${MONITOR_EVENT_TYPES.join(', ')})`);

    reply.hijack();
    const stream = new EventStream(reply.raw, {
      onDrop: (bufferedBytes) => req.log.warn({ bufferedBytes }, 'event stream dropped: the client does not keep up'),
    });
    open.add(stream);
    const unsubscribe = (types as FleetEventName[]).map((type) => services.events.on(type, (event) => {
      const message = toMonitorEvent(type, event);
      if (rolloutId !== undefined && message.rolloutId !== rolloutId) return;
      if (deviceId !== undefined && message.deviceId !== deviceId) return;
      stream.send(type, message);
    }));
    req.log.info({ rolloutId, deviceId, types }, 'event stream opened');
    void stream.closed.then(() => {
      for (const stop of unsubscribe) stop();
      open.delete(stream);
      req.log.info('event stream closed');
    });
  });
}
