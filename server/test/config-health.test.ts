/**
 * Configuration (ajv-validated environment, one clear error naming the variable, a failing boot) and the
 * platform endpoints: /healthz, /readyz, /metrics, 404s and 5xx bodies.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { ConfigError, loadConfig } from '../src/config.ts';
import { fulfilmentConfigFrom, fulfilmentLeaseMs } from '../src/fulfilment/wiring.ts';
import { adminHeaders, buildTestApp } from './helpers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The ConfigError loadConfig throws for env, or a failure when it does not throw one. */
function configError(t: Test, env: Record<string, string>): ConfigError | undefined {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    t.fail(`expected a ConfigError, got ${String(err)}`);
    return undefined;
  }
  t.fail(`expected loadConfig(${JSON.stringify(env)}) to throw`);
  return undefined;
}

const PRODUCTION = {
  WECHAT_APPID: 'wx1234567890abcdef',
  WECHAT_APPSECRET: '0123456789abcdef0123456789abcdef',
  WECHAT_TOKEN: 'prodtoken123',
  OPS_ADMIN_PASSWORD: 'a-strong-admin-password',
  PII_KEY: Buffer.alloc(32, 7).toString('base64'),
  CODE_KEY: Buffer.alloc(32, 9).toString('base64'),
};

t.test('config › a bad value throws ConfigError naming the variable', async (t) => {
  for (const [variable, value] of [['PORT', 'abc'], ['WECHAT_ENCODING_AES_KEY', 'short'], ['DATABASE_URL', 'mysql://x'], ['PORT', '70000'], ['LOG_LEVEL', 'loud']] as const) {
    const err = configError(t, { [variable]: value });
    t.ok(err, `${variable}=${value} is rejected`);
    t.equal(err?.variable, variable);
    t.match(err?.message, new RegExp(`^Invalid configuration: ${variable} `));
    t.match(err?.message, value, 'the message shows the bad value');
    t.notOk(err?.message.includes('\n'), 'one line');
  }
});

t.test('config › good values are coerced to their types', async (t) => {
  const c = loadConfig({ PORT: '8080', JOBS_ENABLED: 'false', DATABASE_URL: 'postgresql://u@db:5432/app', RULES_CACHE_TTL_MS: '0' });
  t.equal(c.port, 8080);
  t.equal(c.jobsEnabled, false);
  t.equal(c.db.url, 'postgresql://u@db:5432/app');
  t.equal(c.rulesCacheTtlMs, 0);
  t.ok(Object.isFrozen(c), 'frozen');
});

t.test('config › WEBHOOK_REQUIRE_ENCRYPTION needs the EncodingAESKey outside the sandbox', async (t) => {
  const live = { WECHAT_SANDBOX: 'false', WECHAT_APPID: 'wx1234567890abcdef', WECHAT_APPSECRET: 'secret-secret-secret', WECHAT_TOKEN: 'tok123', OPS_ADMIN_PASSWORD: 'admin-password-1', PII_KEY: Buffer.alloc(32, 1).toString('base64'), CODE_KEY: Buffer.alloc(32, 2).toString('base64') };
  t.throws(() => loadConfig({ ...live, WEBHOOK_REQUIRE_ENCRYPTION: 'true' }), /WEBHOOK_REQUIRE_ENCRYPTION needs WECHAT_ENCODING_AES_KEY/);
  t.equal(loadConfig({ ...live, WEBHOOK_REQUIRE_ENCRYPTION: 'true', WECHAT_ENCODING_AES_KEY: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG' }).webhook.requireEncryption, true);
  t.equal(loadConfig({}).webhook.requireEncryption, false, 'off by default');
});

t.test('config › a fulfilment lease outlasts two provider calls at the configured timeouts', async (t) => {
  t.equal(fulfilmentLeaseMs(loadConfig({})), 60_000, 'the defaults (10 s timeouts): 60 s');
  t.equal(fulfilmentLeaseMs(loadConfig({ TOPUP_TIMEOUT_MS: '40000' })), 95_000, 'a 40 s top-up timeout: two calls and a margin');
  t.equal(fulfilmentLeaseMs(loadConfig({ WECHATPAY_TIMEOUT_MS: '60000', TOPUP_TIMEOUT_MS: '5000' })), 135_000);
  t.equal(fulfilmentConfigFrom(loadConfig({ WECHATPAY_TIMEOUT_MS: '60000' })).leaseMs, 135_000, 'and the service gets it');
});

t.test('config › the sandbox is on by default when no WECHAT_APPSECRET is set', async (t) => {
  const c = loadConfig({});
  t.equal(c.wechat.sandbox, true);
  t.match(c.wechat.appId, /^wx/);
  t.ok(c.wechat.token, 'a sandbox token');
  t.equal(c.wechat.encodingAesKey?.length, 43, 'a sandbox EncodingAESKey');
  t.equal(c.wechat.apiBase, undefined, 'the sandbox address is known only after listen');
  t.equal(c.ops.adminPassword, 'sandbox-admin');
  t.equal(c.ops.adminPasswordIsDefault, true);
  t.equal(c.port, 3000);
  t.equal(c.piiKey.length, 32);
});

t.test('config › with WECHAT_APPSECRET and no WECHAT_SANDBOX every production secret is required', async (t) => {
  for (const missing of ['WECHAT_APPID', 'WECHAT_TOKEN', 'OPS_ADMIN_PASSWORD', 'PII_KEY', 'CODE_KEY']) {
    const env: Record<string, string> = { ...PRODUCTION };
    delete env[missing];
    const err = configError(t, env);
    t.equal(err?.variable, missing, `missing ${missing} is named`);
    t.match(err?.message, new RegExp(`${missing} is required`));
  }
  const c = loadConfig(PRODUCTION);
  t.equal(c.wechat.sandbox, false);
  t.equal(c.wechat.apiBase, 'https://api.weixin.qq.com');
  t.equal(c.wechat.token, 'prodtoken123');
  t.equal(c.wechat.encodingAesKey, undefined, 'no sandbox key outside the sandbox');
  t.equal(c.ops.adminPasswordIsDefault, false);
  t.same(c.piiKey, Buffer.alloc(32, 7));
});

t.test('config › WECHAT_SANDBOX=true keeps the sandbox even with an app secret', async (t) => {
  const c = loadConfig({ WECHAT_APPSECRET: PRODUCTION.WECHAT_APPSECRET, WECHAT_SANDBOX: 'true' });
  t.equal(c.wechat.sandbox, true);
  const off = configError(t, { WECHAT_SANDBOX: 'false' });
  t.equal(off?.variable, 'WECHAT_APPID', 'WECHAT_SANDBOX=false without secrets names the first one missing');
});

t.test('config › a bad PORT stops the server at boot with one clear line', async (t) => {
  const env: Record<string, string | undefined> = { ...process.env, PORT: 'notaport', NODE_OPTIONS: '' };
  delete env.DATABASE_URL;
  // Keep tap's per-process instrumentation out of the child.
  for (const k of Object.keys(env)) if (k.startsWith('TAP') || k.startsWith('_TAPJS')) delete env[k];
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/main.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  clearTimeout(killer);
  t.equal(code, 1, `exit code 1 (stderr: ${stderr})`);
  const lines = stderr.trim().split('\n');
  t.match(lines[0], /^Invalid configuration: PORT .*notaport/, 'the first line names PORT');
  t.equal(lines.length, 1, 'one line, no stack trace');
  t.notMatch(stderr, /\n\s+at /);
  t.notMatch(stdout, /Webhook/, 'the server never started');
});

t.test('health', async (t) => {
  const { app, sim } = await buildTestApp(t);

  t.test('health › /healthz is 200', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/healthz' });
    t.equal(res.statusCode, 200);
    t.same(res.json(), { status: 'ok' });
  });

  t.test('health › /readyz is 200 ready when the database answers', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    t.equal(res.statusCode, 200);
    t.same(res.json(), { status: 'ready' });
  });

  t.test('health › /metrics has the webhook histogram and request counter after one message', async (t) => {
    const r = await sim.text('oMetrics1', 'hello metrics');
    t.equal(r.status, 200);
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    t.equal(res.statusCode, 200);
    t.match(res.headers['content-type'], /text\/plain/);
    t.match(res.body, /^wechat_webhook_duration_seconds_count\{mode="plain"\} 1$/m, 'one webhook observed');
    t.match(res.body, /^http_requests_total\{method="POST",route="\/wechat",status="200"\} 1$/m, 'the webhook request counted');
    t.match(res.body, /^wechat_webhook_inbound_total\{kind="text",outcome="replied"\} 1$/m);
  });

  t.test('health › an unknown route is a 404 JSON body', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/no/such/route?x=1' });
    t.equal(res.statusCode, 404);
    t.match(res.headers['content-type'], /application\/json/);
    t.match(res.json(), { code: 'NOT_FOUND', message: 'No route GET /no/such/route' });
    const api = await app.inject({ method: 'DELETE', url: '/api/ops/nothing' });
    t.equal(api.statusCode, 404);
    t.equal(api.json().code, 'NOT_FOUND');
  });

  t.test('health › malformed JSON is a 400 JSON body', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/api/ops/login', headers: { 'content-type': 'application/json' }, payload: '{"username":' });
    t.equal(res.statusCode, 400);
    t.type(res.json().code, 'string');
    t.notMatch(res.body, /\n\s+at /);
  });
});

t.test('health › a 5xx never leaks a stack trace (WeChat unreachable during menu publish)', async (t) => {
  // Port 1 on loopback refuses connections: the token fetch fails inside our code.
  const { app } = await buildTestApp(t, { env: { WECHAT_API_BASE: 'http://127.0.0.1:1' } });
  const headers = await adminHeaders(app);
  const res = await app.inject({ method: 'POST', url: '/api/ops/menus/publish', headers: { ...headers, 'x-request-id': 'req-5xx-test' } });
  t.ok(res.statusCode >= 500 && res.statusCode < 600, `a 5xx (${res.statusCode})`);
  const body = res.json();
  t.same(Object.keys(body).sort().filter((k) => k !== 'details'), ['code', 'message']);
  t.notMatch(res.body, /\bat\s+\S+\s+\(|\.ts:\d+|node:internal|stack/i, 'no stack frames or file paths');
  t.notMatch(res.body, /127\.0\.0\.1:1|ECONNREFUSED|fetch failed/, 'no internal detail');
  if (res.statusCode === 500) t.match(body.message, /req-5xx-test/, 'the request id to look up in the logs');
});

t.test('config › TRUST_PROXY: none by default (a client cannot forge its IP), any hop, or a list of proxies; anything else stops the boot', async (t) => {
  t.equal(loadConfig({ NODE_ENV: 'test' }).trustProxy, false);
  t.equal(loadConfig({ NODE_ENV: 'test', TRUST_PROXY: 'true' }).trustProxy, true);
  t.equal(loadConfig({ NODE_ENV: 'test', TRUST_PROXY: 'false' }).trustProxy, false);
  t.equal(loadConfig({ NODE_ENV: 'test', TRUST_PROXY: '10.0.0.0/8,127.0.0.1' }).trustProxy, '10.0.0.0/8,127.0.0.1');
  t.throws(() => loadConfig({ NODE_ENV: 'test', TRUST_PROXY: 'everyone; drop table' }), /TRUST_PROXY/);
});
