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

/** A function that compiles `compile()` on its first call and then is it, Ajv's `errors` and `schemaEnv` included. */
function onFirstUse(compile: () => Compiled): Compiled {
  let fn: Compiled | undefined;
  const get = () => (fn ??= compile());
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

export const lazySchemaCompilers: NonNullable<FastifyServerOptions['schemaController']> = {
  compilersFactory: { buildValidator: lazily(buildValidator) as never, buildSerializer: lazily(buildSerializer) as never },
};
