/**
 * The shared access_token: one refresh across instances, refresh-and-retry once on 40001/42001,
 * backoff on -1, typed errors, lossless 64-bit ids.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildApp } from '../src/app.ts';
import { WeChatApiError } from '../src/wechat/errors.ts';
import { buildTestApp, onPostgres, startSandbox, testConfig, testDatabase } from './helpers.ts';

const tokenCalls = (state: { counts: Map<string, number> }) => state.counts.get('/cgi-bin/stable_token') ?? 0;

t.test('token › fetched through stable_token once, then reused', async (t) => {
  const { services, sandbox } = await buildTestApp(t);
  await services.wechat.createMenu({ button: [{ type: 'click', name: 'A', key: 'A' }] });
  await services.wechat.getMenu();
  t.equal(tokenCalls(sandbox.state), 1);
  t.equal(sandbox.state.counts.get('/cgi-bin/token') ?? 0, 0, 'never the classic token endpoint');
});

t.test('token › an expired token (42001) is refreshed once and the call retried once', async (t) => {
  const { services, sandbox } = await buildTestApp(t);
  await services.wechat.getMenu().catch(() => undefined);
  sandbox.state.expireAllTokens();
  await services.wechat.createMenu({ button: [{ type: 'click', name: 'A', key: 'A' }] });
  t.equal(tokenCalls(sandbox.state), 2);
  const errors = sandbox.state.calls.filter((c) => c.path === '/cgi-bin/menu/create').map((c) => c.errcode);
  t.same(errors, [42001, 0], 'one failure, one retry');
});

t.test('token › a persistent 40001 is retried only once, then surfaces as a typed error', async (t) => {
  const { services, sandbox } = await buildTestApp(t);
  await services.wechat.getMenu().catch(() => undefined);
  sandbox.state.failures.set('/cgi-bin/menu/get', [40001, 40001, 40001]);
  const err = await services.wechat.getMenu().catch((e: unknown) => e);
  t.type(err, WeChatApiError);
  t.equal((err as WeChatApiError).errcode, 40001);
  t.equal(sandbox.state.failures.get('/cgi-bin/menu/get')!.length, 1, 'exactly two attempts');
});

t.test('token › system busy (-1) is retried with backoff', async (t) => {
  const { services, sandbox } = await buildTestApp(t);
  sandbox.state.failures.set('/cgi-bin/menu/create', [-1, -1]);
  const res = await services.wechat.createMenu({ button: [{ type: 'click', name: 'A', key: 'A' }] });
  t.equal(res.errcode, 0);
  t.same(sandbox.state.calls.filter((c) => c.path === '/cgi-bin/menu/create').map((c) => c.errcode), [-1, -1, 0]);
  sandbox.state.failures.set('/cgi-bin/menu/create', [-1, -1, -1]);
  const err = await services.wechat.createMenu({ button: [{ type: 'click', name: 'A', key: 'A' }] }).catch((e: unknown) => e);
  t.equal((err as WeChatApiError).errcode, -1, 'gives up after the retries');
});

t.test('token › 64-bit msgid from template/send survives', async (t) => {
  const { services, sandbox } = await buildTestApp(t);
  await sandbox.state.userAction('oT', 'message');
  const res = await services.wechat.sendTemplate('oT', 'TPL', '', '', { thing1: { value: 'x' } });
  t.type(res.msgid, 'string');
  t.ok(BigInt(res.msgid) > BigInt(Number.MAX_SAFE_INTEGER));
});

t.test('token › two instances on one database with an expired token refresh it once between them', async (t) => {
  const database = await testDatabase(t);
  const base = testConfig();
  const sandbox = await startSandbox(t, base.wechat.appId, base.wechat.appSecret);
  const config = testConfig({ WECHAT_API_BASE: sandbox.url });
  const a = await buildApp(config, { database, logger: false });
  const b = await buildApp(config, { database, logger: false });
  t.teardown(async () => {
    await a.app.close();
    await b.app.close();
  });
  const menu = { button: [{ type: 'click', name: 'A', key: 'A' }] };
  await Promise.all([a.services.wechat.createMenu(menu), b.services.wechat.createMenu(menu)]);
  t.equal(tokenCalls(sandbox.state), 1, 'first fetch: once');
  sandbox.state.expireAllTokens();
  await Promise.all([a.services.wechat.createMenu(menu), b.services.wechat.createMenu(menu), a.services.wechat.getMenu(), b.services.wechat.getMenu()]);
  t.equal(tokenCalls(sandbox.state), 2, 'after expiry: once more, not once per instance');
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

t.test('token › two server processes on one PostgreSQL with an expired token refresh it once between them', { skip: !onPostgres && 'needs PostgreSQL (PGlite is single-process)' }, async (t) => {
  const database = await testDatabase(t);
  const base = testConfig();
  const sandbox = await startSandbox(t, base.wechat.appId, base.wechat.appSecret);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'tok-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const procs: ChildProcess[] = [];
  const ports = [await freePort(), await freePort()];
  for (const port of ports) {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/main.ts'], {
      cwd: path.resolve(import.meta.dirname, '../..'),
      env: { ...process.env, DATABASE_URL: database.url!, PORT: String(port), HOST: '127.0.0.1', WECHAT_API_BASE: sandbox.url, LOG_LEVEL: 'warn', DATA_DIR: dataDir, JOBS_ENABLED: 'false' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    procs.push(child);
  }
  t.teardown(async () => {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))));
  });
  const deadline = Date.now() + 60_000;
  for (const port of ports) {
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error('servers did not start');
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const login = async (port: number) => `Bearer ${(await (await fetch(`http://127.0.0.1:${port}/api/ops/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: 'sandbox-admin' }) })).json() as { token: string }).token}`;
  const auth = await Promise.all(ports.map(login));
  const publish = () => Promise.all(ports.map((port, i) => fetch(`http://127.0.0.1:${port}/api/ops/menus/publish`, { method: 'POST', headers: { authorization: auth[i]! } }).then((r) => r.status)));

  t.same(await publish(), [200, 200]);
  t.equal(tokenCalls(sandbox.state), 1, 'both processes share the first token');
  sandbox.state.expireAllTokens();
  t.same(await publish(), [200, 200]);
  t.equal(tokenCalls(sandbox.state), 2, 'the expired token is refreshed once between the two processes');
  const expired = sandbox.state.calls.filter((c) => c.path === '/cgi-bin/menu/create' && c.errcode === 42001).length;
  t.equal(expired, 2, 'each process saw the expiry once and retried once');
});
