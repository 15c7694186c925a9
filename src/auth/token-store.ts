// Operator API tokens. A token is 256 random bits shown once; only its SHA-256 is stored (a hash
// of a high-entropy secret needs no salt or slow KDF), and requests are authenticated by a lookup
// of that hash in memory, so authentication costs no query. The bootstrap token (MQOTA_ADMIN_TOKEN
// or <data>/admin-token) is the built-in `admin`: valid while configured, never stored.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { SharedCaches } from '../cluster/shared-caches.js';
import type { Logger } from '../logger.js';
import { isRole, type Principal, type Role } from './roles.js';

export const BUILT_IN_ADMIN = 'admin';

/** How often (at most) a token's lastUsedAt is written: usage is recorded in memory and written behind. */
const LAST_USED_WRITE_MS = 60_000;

export interface TokenInfo {
  name: string;
  role: Role;
  /** The bootstrap admin token: configured outside the API, cannot be revoked through it. */
  builtIn: boolean;
  createdAt: Date | null;
  lastUsedAt: Date | null;
}

interface Entry extends TokenInfo { id: string | null; hash: string }

export class DuplicateTokenError extends Error {}
export class UnknownTokenError extends Error {}
export class BuiltInTokenError extends Error {}

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

export class ApiTokenStore {
  private readonly byHash = new Map<string, Entry>();
  private readonly byName = new Map<string, Entry>();
  private readonly used = new Set<Entry>();
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly prisma: PrismaClient, private readonly bootstrapToken: string, private readonly log: Logger, private readonly shared?: SharedCaches) {
    shared?.register('tokens', () => this.reload());
  }

  async load(): Promise<void> {
    await this.reload();
    this.timer = setInterval(() => void this.writeLastUsed(), LAST_USED_WRITE_MS).unref();
  }

  /** (Re)reads the tokens: at start, and when another instance created or revoked one. */
  private async reload(): Promise<void> {
    const rows = await this.prisma.apiToken.findMany({ where: { revokedAt: null } });
    this.byHash.clear();
    this.byName.clear();
    this.used.clear();
    this.add({ id: null, name: BUILT_IN_ADMIN, role: 'admin', builtIn: true, hash: hashToken(this.bootstrapToken), createdAt: null, lastUsedAt: null });
    for (const row of rows) {
      if (!isRole(row.role)) { this.log.warn({ token: row.name, role: row.role }, 'API token with an unknown role ignored'); continue; }
      this.add({ id: row.id, name: row.name, role: row.role, builtIn: false, hash: row.tokenHash, createdAt: row.createdAt, lastUsedAt: row.lastUsedAt });
    }
  }

  /** The principal a presented bearer token stands for, or null. */
  authenticate(presented: string): Principal | null {
    const entry = this.byHash.get(hashToken(presented));
    if (!entry) return null;
    entry.lastUsedAt = new Date();
    if (entry.id) this.used.add(entry);
    return { name: entry.name, role: entry.role };
  }

  list(): TokenInfo[] {
    return [...this.byName.values()]
      .sort((a, b) => Number(b.builtIn) - Number(a.builtIn) || a.name.localeCompare(b.name))
      .map(({ name, role, builtIn, createdAt, lastUsedAt }) => ({ name, role, builtIn, createdAt, lastUsedAt }));
  }

  /** Creates a token; the secret is in the result and nowhere else. */
  async create(name: string, role: Role): Promise<TokenInfo & { token: string }> {
    if (name === BUILT_IN_ADMIN) throw new DuplicateTokenError(`'${BUILT_IN_ADMIN}' is the built-in admin token's name`);
    if (this.byName.has(name)) throw new DuplicateTokenError(`a token named '${name}' exists; revoke it first`);
    const token = `mqota_${randomBytes(32).toString('base64url')}`;
    const hash = hashToken(token);
    try {
      // A revoked token's row keeps its name until the name is used again.
      const [, row] = await this.prisma.$transaction([
        this.prisma.apiToken.deleteMany({ where: { name, revokedAt: { not: null } } }),
        this.prisma.apiToken.create({ data: { id: `tok_${randomUUID()}`, name, role, tokenHash: hash } }),
      ]);
      const entry: Entry = { id: row.id, name, role, builtIn: false, hash, createdAt: row.createdAt, lastUsedAt: null };
      this.add(entry);
      await this.shared?.changed('tokens');
      return { name, role, builtIn: false, createdAt: entry.createdAt, lastUsedAt: null, token };
    } catch (err) {
      if ((err as { code?: string }).code === 'P2002') throw new DuplicateTokenError(`a token named '${name}' exists`);
      throw err;
    }
  }

  /** Revokes a token at once: the next request with it is a 401. */
  async revoke(name: string): Promise<void> {
    const entry = this.byName.get(name);
    if (!entry) throw new UnknownTokenError(`token ${name} not found`);
    if (entry.builtIn) throw new BuiltInTokenError(`the built-in admin token cannot be revoked here: change MQOTA_ADMIN_TOKEN (or delete <data>/admin-token) and restart`);
    this.byHash.delete(entry.hash);
    this.byName.delete(entry.name);
    this.used.delete(entry);
    await this.prisma.apiToken.update({ where: { id: entry.id! }, data: { revokedAt: new Date(), lastUsedAt: entry.lastUsedAt } });
    await this.shared?.changed('tokens');
  }

  /** Writes pending lastUsedAt values; called on a timer and at close. */
  writeLastUsed(): Promise<void> {
    this.writing = this.writing.then(async () => {
      const batch = [...this.used];
      this.used.clear();
      if (!batch.length) return;
      await this.prisma.$transaction(batch.map((e) => this.prisma.apiToken.updateMany({ where: { id: e.id!, revokedAt: null }, data: { lastUsedAt: e.lastUsedAt } })))
        .catch((err) => this.log.warn({ err, tokens: batch.length }, 'could not record API token use'));
    });
    return this.writing;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.writeLastUsed();
  }

  private add(entry: Entry): void {
    this.byHash.set(entry.hash, entry);
    this.byName.set(entry.name, entry);
  }
}
