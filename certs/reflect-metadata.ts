// @peculiar/x509 registers its algorithms through tsyringe, which refuses to load unless
// `Reflect.getMetadata` exists (normally the `reflect-metadata` package, not a dependency here).
// This is the small part of that API tsyringe calls: (own) metadata per target, no decorators
// emit any here. Import it before @peculiar/x509; if `reflect-metadata` is ever added, import that
// instead and delete this file.

type MetadataKey = unknown;
type Target = object;

interface ReflectMetadata {
  getMetadata(key: MetadataKey, target: Target, property?: string | symbol): unknown;
  getOwnMetadata(key: MetadataKey, target: Target, property?: string | symbol): unknown;
  hasMetadata(key: MetadataKey, target: Target, property?: string | symbol): boolean;
  defineMetadata(key: MetadataKey, value: unknown, target: Target, property?: string | symbol): void;
  metadata(key: MetadataKey, value: unknown): (target: Target, property?: string | symbol) => void;
}

const reflect = Reflect as typeof Reflect & Partial<ReflectMetadata>;

if (typeof reflect.getMetadata !== 'function') {
  const store = new WeakMap<Target, Map<string | symbol | undefined, Map<MetadataKey, unknown>>>();
  const own = (target: Target, property: string | symbol | undefined, create: boolean) => {
    let byProperty = store.get(target);
    if (!byProperty) {
      if (!create) return undefined;
      byProperty = new Map();
      store.set(target, byProperty);
    }
    let entries = byProperty.get(property);
    if (!entries && create) {
      entries = new Map();
      byProperty.set(property, entries);
    }
    return entries;
  };
  const api: ReflectMetadata = {
    getOwnMetadata: (key, target, property) => own(target, property, false)?.get(key),
    getMetadata(key, target, property) {
      for (let t: Target | null = target; t; t = Object.getPrototypeOf(t)) {
        const entries = own(t, property, false);
        if (entries?.has(key)) return entries.get(key);
      }
      return undefined;
    },
    hasMetadata: (key, target, property) => api.getMetadata(key, target, property) !== undefined,
    defineMetadata: (key, value, target, property) => void own(target, property, true)!.set(key, value),
    metadata: (key, value) => (target, property) => api.defineMetadata(key, value, target, property),
  };
  Object.assign(reflect, api);
}

export {};
