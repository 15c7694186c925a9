// Tables every instance keeps in memory (the firmware catalog, API tokens, revoked certificates)
// and changes rarely, through the API. After a change an instance says which one changed; the
// others reload it whole. Without a cluster (PGlite, one instance) nothing is sent.

export type SharedCacheName = 'catalog' | 'tokens' | 'certificates';

export class SharedCaches {
  private readonly reloaders = new Map<SharedCacheName, () => Promise<void>>();

  /** `announce` tells the other instances (the change feed); null with one instance. */
  constructor(private readonly announce: ((name: SharedCacheName) => Promise<void>) | null = null) {}

  /** Other instances may change these tables. */
  get clustered(): boolean {
    return this.announce !== null;
  }

  /** How this instance reloads `name` when another one changed it. */
  register(name: SharedCacheName, reload: () => Promise<void>): void {
    this.reloaders.set(name, reload);
  }

  /** This instance changed `name` (committed): the others reload it. Best effort: a lost notice heals at their next reload. */
  async changed(name: SharedCacheName): Promise<void> {
    await this.announce?.(name).catch(() => undefined);
  }

  /** Another instance changed `name`. */
  async reload(name: SharedCacheName): Promise<void> {
    await this.reloaders.get(name)?.();
  }

  async reloadAll(): Promise<void> {
    for (const reload of this.reloaders.values()) await reload();
  }
}
