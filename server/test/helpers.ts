/**
 * Test harness: a real database per test file (PGlite in memory, or a fresh PostgreSQL database when
 * DATABASE_URL is set, dropped afterwards), the WeChat sandbox on a loopback port, and the app driven
 * through app.inject by a WeChat simulator that signs (and encrypts) like the platform.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import pg from 'pg';
import { loadConfig, type Config } from '../src/config.ts';
import { openDatabase, type Database } from '../src/db/client.ts';
import { buildApp, type BuildOptions } from '../src/app.ts';
import { SandboxState, sandboxPlugin } from '../src/wechat/sandbox/platform.ts';
import { WeChatSimulator, type Transport } from '../src/wechat/sandbox/simulator.ts';
import { PaySandboxState, paySandboxPlugin } from '../src/wechat/sandbox/pay.ts';
import { SANDBOX_PAY, sandboxApiV3Key, sandboxPayKeys } from '../src/wechat/sandbox/pay-keys.ts';
import { TopupSandboxState, topupSandboxPlugin } from '../src/wechat/sandbox/topup.ts';

type T = { teardown(fn: () => unknown): void };

export const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'wechat');
export const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');
export const fixtureJson = (name: string) => JSON.parse(fixture(name));

export const onPostgres = !!process.env.DATABASE_URL;

/** Noon in Shanghai (04:00 UTC) on the most recent day: a manual clock's start with the time-of-day signals at rest. */
export function noonShanghai(): Date {
  const d = new Date();
  d.setUTCHours(4, 0, 0, 0);
  if (d.getTime() > Date.now()) d.setUTCDate(d.getUTCDate() - 1);
  return d;
}


let template: Promise<Blob> | undefined;
function pgliteTemplate(): Promise<Blob> {
  template ??= (async () => {
    const db = (await openDatabase({ dataDir: 'memory://' })) as Database & { dump(): Promise<Blob> };
    await db.migrate();
    const image = await db.dump();
    await db.close();
    return image;
  })();
  return template;
}

/** A fresh database for this test (file or subtest). */
export async function testDatabase(t: T): Promise<Database & { url?: string }> {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    // initdb + migrations cost seconds; do them once per test process and start each database from the image.
    const db = await openDatabase({ dataDir: 'memory://', pgliteImage: await pgliteTemplate() });
    t.teardown(() => db.close());
    return db;
  }
  const name = `t_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const db = await openDatabase({ url: url.toString(), poolSize: 20 });
  t.teardown(async () => {
    await db.close();
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  });
  return Object.assign(db, { url: url.toString() });
}

/** The sandbox platform on a loopback port. */
export async function startSandbox(t: T, appId: string, appSecret: string) {
  const state = new SandboxState({ appId, appSecret });
  const server = Fastify({ logger: false });
  await server.register(sandboxPlugin(state));
  const address = await server.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => server.close());
  return { state, url: address };
}

/**
 * The WeChat Pay sandbox (sandbox keys, http notify URLs allowed), the top-up sandbox, and a relay that forwards
 * WeChat Pay's notifications into an app driven by inject (set `relay.target` once the app exists).
 */
export async function startPaySandboxes(t: T, appId: string) {
  const keys = sandboxPayKeys();
  const payState = new PaySandboxState({
    mchid: SANDBOX_PAY.mchid,
    merchantPublicKeyPem: keys.merchantPublicKeyPem,
    platformPrivateKeyPem: keys.platformPrivateKeyPem,
    platformPublicKeyId: SANDBOX_PAY.publicKeyId,
    apiV3Key: sandboxApiV3Key(appId),
    allowHttpNotifyUrl: true,
  });
  const topupState = new TopupSandboxState();
  const server = Fastify({ logger: false });
  await server.register(paySandboxPlugin(payState), { prefix: '/pay' });
  await server.register(topupSandboxPlugin(topupState), { prefix: '/topup' });
  const relay: { target?: { inject: (o: any) => Promise<{ statusCode: number; body: string }> } } = {};
  await server.register(async (r) => {
    r.removeContentTypeParser('application/json');
    r.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, String(body)));
    // transfer (fulfilment) and jsapi (commerce: mall payments)
    r.post('/relay/pay/notify/:kind', async (req, reply) => {
      const kind = (req.params as { kind: string }).kind;
      if (kind !== 'transfer' && kind !== 'jsapi') return reply.code(404).send({ code: 'FAIL', message: 'no such notify' });
      if (!relay.target) return reply.code(503).send({ code: 'FAIL', message: 'no app' });
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('wechatpay-') && typeof v === 'string') headers[k] = v;
      const res = await relay.target.inject({ method: 'POST', url: `/pay/notify/${kind}`, headers, payload: req.body as string });
      return reply.code(res.statusCode).type('application/json').send(res.body);
    });
  });
  const url = await server.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(async () => {
    topupState.finishAll();
    await server.close();
  });
  return {
    pay: { state: payState, url: `${url}/pay` },
    topup: { state: topupState, url: `${url}/topup` },
    notifyUrl: `${url}/relay/pay/notify/transfer`,
    jsapiNotifyUrl: `${url}/relay/pay/notify/jsapi`,
    relay,
  };
}

export function testConfig(env: Record<string, string> = {}): Config {
  // Tests post as if through a proxy on this host (inject's peer is 127.0.0.1): their X-Forwarded-For is the client IP.
  return loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', JOBS_ENABLED: 'false', RULES_CACHE_TTL_MS: '0', TRUST_PROXY: '127.0.0.1', ...env });
}

export interface TestAppOptions extends BuildOptions {
  env?: Record<string, string>;
  encrypt?: boolean;
}

export async function buildTestApp(t: T, opts: TestAppOptions = {}) {
  const base = testConfig(opts.env);
  const sandbox = await startSandbox(t, base.wechat.appId, base.wechat.appSecret);
  const payboxes = await startPaySandboxes(t, base.wechat.appId);
  const config = testConfig({
    WECHAT_API_BASE: sandbox.url,
    WECHATPAY_API_BASE: payboxes.pay.url,
    WECHATPAY_NOTIFY_URL: payboxes.notifyUrl,
    WECHATPAY_JSAPI_NOTIFY_URL: payboxes.jsapiNotifyUrl,
    TOPUP_API_BASE: payboxes.topup.url,
    ...opts.env,
  });
  const database = opts.database ?? (await testDatabase(t));
  const built = await buildApp(config, { ...opts, database, logger: false });
  payboxes.relay.target = built.app;
  t.teardown(() => built.app.close());
  const transport = injectTransport(built.app);
  const simulator = (encrypt = opts.encrypt ?? false, compatible = false) =>
    new WeChatSimulator({ transport, token: config.wechat.token, appId: config.wechat.appId, encodingAesKey: config.wechat.encodingAesKey, sandboxUrl: sandbox.url, encrypt, compatible });
  // paySandbox / topupSandbox: the WeChat Pay and top-up sandboxes this app talks to (state + base URL).
  return { ...built, config, sandbox, database, sim: simulator(), simulator, paySandbox: payboxes.pay, topupSandbox: payboxes.topup };
}

/** A transport that hands the simulator's signed requests to `app` by inject (what WeChat's POSTs would be). */
export function injectTransport(app: { inject: (o: any) => Promise<{ statusCode: number; body: string }> }): Transport {
  return {
    async post(pathAndQuery, body, contentType) {
      const res = await app.inject({ method: 'POST', url: pathAndQuery, payload: body, headers: { 'content-type': contentType } });
      return { status: res.statusCode, body: res.body };
    },
  };
}

/** A WeChat simulator for a test app on a clock of the test's (`now`: the time its messages carry). */
export function simulatorOn(ctx: Awaited<ReturnType<typeof buildTestApp>>, now: () => number) {
  return new WeChatSimulator({ transport: injectTransport(ctx.app), token: ctx.config.wechat.token, appId: ctx.config.wechat.appId, sandboxUrl: ctx.sandbox.url, now });
}

/** Log in as the seeded admin and return auth headers. */
export async function adminHeaders(app: { inject: (o: any) => Promise<{ json(): any }> }, password = 'sandbox-admin') {
  const res = await app.inject({ method: 'POST', url: '/api/ops/login', payload: { username: 'admin', password } });
  return { authorization: `Bearer ${res.json().token}` };
}

/** Count rows of a table. */
export async function count(database: Database, table: string, where = 'true'): Promise<number> {
  const { sql } = await import('drizzle-orm');
  const rows = await database.query<{ n: number }>(sql.raw(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`));
  return Number(rows[0]!.n);
}

/**
 * On PostgreSQL: run `lockSql` (with `params`) in a transaction of another connection and keep its row locks until
 * `waiters` statements of the test database wait for them (or 10 s pass); `releaseWhen` commits and returns how many
 * were waiting.
 */
export async function holdLocks(t: T, url: string, lockSql: string, params: unknown[] = []) {
  const holder = new pg.Client({ connectionString: url });
  await holder.connect();
  t.teardown(() => holder.end());
  await holder.query('BEGIN');
  await holder.query(lockSql, params);
  return {
    async releaseWhen(waiters: number) {
      const deadline = Date.now() + 10_000;
      let n = 0;
      while (Date.now() < deadline) {
        await holder.query('SELECT pg_stat_clear_snapshot()'); // inside a transaction, pg_stat_activity is a snapshot
        const r = await holder.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`);
        n = r.rows[0].n;
        if (n >= waiters) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      await holder.query('COMMIT');
      return n;
    },
  };
}
