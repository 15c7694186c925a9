// Fastify's own schema compilers (Ajv for requests, fast-json-stringify for responses), each
// route's schema compiled on its first use instead of while the app is built. Compiling all of
// them took ~1 s of a restart on the 2-core machine and their code stays in memory for routes
// an installation may never call (bench/README.md, "Start-up and memory"). A schema that cannot
// compile now fails its route's first request with a 500 instead of the start-up; the tests call
// every route.
import { createRequire } from 'node:module';
import type { FastifyServerOptions } from 'fastify';

// The compilers Fastify would use, from Fastify's own dependencies (same versions, same options).
const fastifyRequire = createRequire(createRequire(import.meta.url).resolve('fastify'));
type Factory = (externalSchemas: unknown, options: unknown) => (route: RouteSchema) => (...args: unknown[]) => unknown;
const buildValidator = (fastifyRequire('@fastify/ajv-compiler') as () => Factory)();
const buildSerializer = (fastifyRequire('@fastify/fast-json-stringify-compiler') as () => Factory)();

type Compiled = ((...args: unknown[]) => unknown) & Record<string, unknown>;
/** What Fastify passes a compiler: one schema of one route (a request part, or a response status). */
interface RouteSchema { schema: unknown; method: string; url: string }

/**
 * Fastify's `schemaController` option with compilers that compile on first use, and `warmUp()`,
 * which compiles the schemas of the routes `warm` names, one per turn of the event loop (after the
 * app listens), so neither the start nor the first of those requests (a rollout's POST during a
 * fan-out: ~100 ms of Ajv in `npm run bench`) waits for them. The other routes compile on their
 * first request, so an installation that never calls them never holds their code.
 */
export function lazySchemaCompilers(warm: (route: { method: string; url: string }) => boolean): {
  schemaController: NonNullable<FastifyServerOptions['schemaController']>; warmUp(onDone?: () => void): () => void;
} {
  const pending = new Set<() => unknown>();

  /**
   * A function that compiles `compile()` on its first call and then is it, Ajv's `errors` and
   * `schemaEnv` included; `warmUp` are the steps warmUp() takes with it, one per turn.
   */
  function onFirstUse(compile: () => Compiled, warmUp: ((compiled: Compiled) => void)[]): Compiled {
    let fn: Compiled | undefined;
    const get = () => (fn ??= compile());
    for (const step of warmUp) pending.add(() => step(get()));
    const lazy = ((...args: unknown[]) => {
      const compiled = get();
      const result = compiled(...args);
      lazy.errors = compiled.errors; // Ajv sets errors on the function after each call; Fastify reads them from ours
      return result;
    }) as Compiled;
    Object.defineProperty(lazy, 'schemaEnv', { get: () => get().schemaEnv });
    return lazy;
  }

  function lazily(factory: Factory, warmUp: ((compiled: Compiled, route: RouteSchema) => void)[]): Factory {
    return (externalSchemas, options) => {
      let compiler: ReturnType<Factory> | undefined;
      return (route) => onFirstUse(
        () => (compiler ??= factory(externalSchemas, options))(route) as Compiled,
        warm(route) ? warmUp.map((step) => (compiled: Compiled) => step(compiled, route)) : [],
      );
    };
  }

  return {
    schemaController: { compilersFactory: {
      // Compiled, then run once on a value of its schema: V8 compiles the generated function on its
      // first call, ~5 ms for a rollout's body, which was otherwise the first POST's during a fan-out.
      buildValidator: lazily(buildValidator, [() => {}, exercise('container')]) as never,
      // Compiled, then run twice (each step in its own turn: up to ~60 ms of Ajv for a rollout's answer).
      buildSerializer: lazily(buildSerializer, [() => {}, exercise('last'), exercise('container')]) as never,
    } },
    warmUp(onDone) {
      let stopped = false;
      const next = () => {
        if (stopped) return;
        const [task] = pending;
        if (!task) { onDone?.(); return; }
        pending.delete(task);
        try { task(); } catch { /* its route's first request reports it */ }
        setImmediate(next);
      };
      setImmediate(next);
      return () => { stopped = true; };
    },
  };
}

/**
 * Runs a compiled validator or serializer on a throwaway value of its schema (Ajv may coerce it in
 * place). fast-json-stringify compiles an `anyOf` branch's Ajv validator when a value first reaches
 * it (`validator.getSchemaValidator` → Ajv's compile), so a compiled serializer still compiled
 * ~40 ms of Ajv in the first answer of a rollout's POST during a fan-out. Serializing values that
 * reach every branch does it now.
 */
function exercise(pick: 'last' | 'container') {
  return (compiled: Compiled, route: RouteSchema) => {
    try { compiled(exemplar(route.schema, pick)); } catch { /* a shape the exemplar misses compiles on first use */ }
  };
}

interface JsonSchema {
  type?: string | string[]; const?: unknown; enum?: unknown[]; format?: string;
  anyOf?: JsonSchema[]; oneOf?: JsonSchema[]; properties?: Record<string, JsonSchema>; items?: JsonSchema;
}

/**
 * A value of `schema`. In an `anyOf`/`oneOf`, 'last' takes the last branch (fast-json-stringify
 * tries each one before it: `Nullable(x)` with null tries both), 'container' takes an object or
 * array branch when there is one, to reach the unions nested inside it.
 */
export function exemplar(schema: unknown, pick: 'last' | 'container'): unknown {
  if (!schema || typeof schema !== 'object') return null;
  const s = schema as JsonSchema;
  if ('const' in s) return s.const;
  if (s.enum?.length) return s.enum[0];
  const branches = s.anyOf ?? s.oneOf;
  if (branches?.length) {
    const container = branches.find((b) => ['object', 'array'].includes(String(b.type)));
    return exemplar(pick === 'container' && container ? container : branches[branches.length - 1], pick);
  }
  switch (Array.isArray(s.type) ? s.type[0] : s.type) {
    case 'object': return Object.fromEntries(Object.entries(s.properties ?? {}).map(([k, v]) => [k, exemplar(v, pick)]));
    case 'array': return s.items ? [exemplar(s.items, pick)] : [];
    case 'string': return s.format === 'date-time' ? new Date(0).toISOString() : '';
    case 'integer': case 'number': return 0;
    case 'boolean': return false;
    default: return null;
  }
}
