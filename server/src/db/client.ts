/**
 * One Drizzle database over node-postgres (DATABASE_URL) or PGlite (embedded, data under DATA_DIR).
 * Same schema, same migrations, same queries on both.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { sql, type SQL } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import * as schema from './schema.ts';

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
/** A transaction or the database itself: repos accept either. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0] | Db;

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations');

export interface Database {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Db;
  /** Run raw SQL and get rows back (same shape on both drivers). */
  query<T = Record<string, unknown>>(q: SQL): Promise<T[]>;
  /**
   * A hot statement by name: on PostgreSQL a prepared statement per connection (parsed and planned once),
   * on PGlite a plain parameterised query. `$1…` placeholders.
   */
  prepared<T = Record<string, unknown>>(name: string, text: string, values: unknown[], opts?: { plan?: 'custom' | 'generic' }): Promise<T[]>;
  migrate(): Promise<void>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url?: string | undefined;
  /** PGlite data directory; 'memory://' for an in-memory database. */
  dataDir?: string;
  poolSize?: number;
  /** PGlite only: start from a dumped data directory (tests reuse one migrated template). */
  pgliteImage?: Blob;
}

// Any constant works; it only has to be the same for every instance of this app.
const MIGRATION_LOCK_KEY = 727_001;

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  if (opts.url) return openPostgres(opts.url, opts.poolSize ?? 16);
  return openPglite(opts.dataDir ?? './data', opts.pgliteImage);
}

async function openPostgres(url: string, poolSize: number): Promise<Database> {
  // Session settings go in the startup packet (`options`), so no query races the pool's first one.
  const pool = new pg.Pool({ connectionString: url, max: poolSize, options: '-c plan_cache_mode=force_custom_plan' });
  // A dropped idle connection must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  // By default prepared statements are planned for their actual parameters. Statements whose only parameter is one
  // JSON batch gain nothing from that (the planner cannot see inside the jsonb) but pay for planning on every
  // execution (~2 ms for the redemption statement): they run on connections that keep the generic plan — a
  // separate, smaller pool, opened on first use.
  let genericPool: pg.Pool | undefined;
  const generic = () => {
    if (genericPool) return genericPool;
    genericPool = new pg.Pool({ connectionString: url, max: Math.max(2, Math.ceil(poolSize / 2)), options: '-c plan_cache_mode=force_generic_plan' });
    genericPool.on('error', () => undefined);
    return genericPool;
  };
  const db = drizzlePg(pool, { schema, casing: 'snake_case' }) as unknown as Db;
  return {
    kind: 'postgres',
    db,
    async query(q) {
      const res = await db.execute(q);
      return (res as unknown as { rows: any[] }).rows;
    },
    async prepared(name, text, values, opts) {
      return ((opts?.plan === 'generic' ? generic() : pool).query({ name, text, values }) as Promise<pg.QueryResult>).then((r) => r.rows);
    },
    async migrate() {
      // Several instances may start at once: one migrates, the others wait and find nothing to do.
      const client = await pool.connect();
      try {
        await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
        await migratePg(db as any, { migrationsFolder: MIGRATIONS_DIR });
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
        client.release();
      }
    },
    async ping() {
      try {
        await pool.query('SELECT 1');
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      await Promise.all([pool.end(), genericPool?.end()]);
    },
  };
}

async function openPglite(dataDir: string, image?: Blob): Promise<Database & { dump(): Promise<Blob> }> {
  const memory = dataDir.startsWith('memory://');
  if (!memory) mkdirSync(dataDir, { recursive: true });
  const options = image ? { loadDataDir: image } : {};
  const client = memory ? new PGlite(options) : new PGlite(path.resolve(dataDir), options);
  await client.waitReady;
  const db = drizzlePglite(client, { schema, casing: 'snake_case' }) as unknown as Db;
  return {
    kind: 'pglite',
    db,
    async query(q) {
      const res = await db.execute(q);
      return (res as unknown as { rows: any[] }).rows;
    },
    async prepared(_name, text, values) {
      return (await client.query<any>(text, values)).rows;
    },
    async migrate() {
      await migratePglite(db as any, { migrationsFolder: MIGRATIONS_DIR });
    },
    async ping() {
      try {
        await client.query('SELECT 1');
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      if (!client.closed) await client.close();
    },
    dump: () => client.dumpDataDir('none'),
  };
}

export { sql };
