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
type Factory = (externalSchemas: unknown, options: unknown) => (route: unknown) => (...args: unknown[]) => unknown;
const buildValidator = (fastifyRequire('@fastify/ajv-compiler') as () => Factory)();
const buildSerializer = (fastifyRequire('@fastify/fast-json-stringify-compiler') as () => Factory)();

type Compiled = ((...args: unknown[]) => unknown) & Record<string, unknown>;

/**
 * Fastify's `schemaController` option with compilers that compile on first use, and `warmUp()`,
 * which compiles what is still pending one schema per turn of the event loop (after the app
 * listens), so neither the start nor a first request (a rollout's POST during a fan-out: ~100 ms
 * of Ajv in `npm run bench`) waits for them.
 */
export function lazySchemaCompilers(): { schemaController: NonNullable<FastifyServerOptions['schemaController']>; warmUp(): () => void } {
  const pending = new Set<() => unknown>();

  /** A function that compiles `compile()` on its first call and then is it, Ajv's `errors` and `schemaEnv` included. */
  function onFirstUse(compile: () => Compiled): Compiled {
    let fn: Compiled | undefined;
    const get = () => {
      if (!fn) { fn = compile(); pending.delete(get); }
      return fn;
    };
    pending.add(get);
    const lazy = ((...args: unknown[]) => {
      const compiled = get();
      const result = compiled(...args);
      lazy.errors = compiled.errors; // Ajv sets errors on the function after each call; Fastify reads them from ours
      return result;
    }) as Compiled;
    Object.defineProperty(lazy, 'schemaEnv', { get: () => get().schemaEnv });
    return lazy;
  }

  function lazily(factory: Factory): Factory {
    return (externalSchemas, options) => {
      let compiler: ReturnType<Factory> | undefined;
      return (route) => onFirstUse(() => (compiler ??= factory(externalSchemas, options))(route) as Compiled);
    };
  }

  return {
    schemaController: { compilersFactory: { buildValidator: lazily(buildValidator) as never, buildSerializer: lazily(buildSerializer) as never } },
    warmUp() {
      let stopped = false;
      const next = () => {
        if (stopped) return;
        const [compile] = pending;
        if (!compile) return;
        try { compile(); } catch { pending.delete(compile); } // its route's first request reports it
        setImmediate(next);
      };
      setImmediate(next);
      return () => { stopped = true; };
    },
  };
}
