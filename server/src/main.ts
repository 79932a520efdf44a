/**
 * Entry point: the only file that knows about ports, signals and process exit.
 */
import 'dotenv/config';
import closeWithGrace from 'close-with-grace';
import { ConfigError, loadConfig } from './config.ts';
import { buildApp } from './app.ts';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    // One clear line naming the variable, then stop.
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}

const { app, database } = await buildApp(config, { mountSandbox: config.wechat.sandbox && !config.wechat.apiBase });
await app.listen({ port: config.port, host: config.host });

const base = config.publicUrl ?? `http://127.0.0.1:${config.port}`;
const lines = [
  '',
  `  Webhook      ${base}/wechat   (token: ${config.wechat.sandbox ? config.wechat.token : '<WECHAT_TOKEN>'})`,
  `  API docs     ${base}/docs`,
  `  Ops API      ${base}/api/ops  (POST /api/ops/login)`,
  `  Mini program ${base}/api/mp   (POST /api/mp/login with a wx.login code)`,
  `  Health       ${base}/healthz  ${base}/readyz  ${base}/metrics`,
  `  Database     ${database.kind === 'pglite' ? `PGlite at ${config.db.dataDir}` : 'PostgreSQL (DATABASE_URL)'}`,
  config.wechat.sandbox
    ? `  WeChat       SANDBOX at ${config.wechat.apiBase ?? `${base}/sandbox`}  — chat with: npm run chat`
    : `  WeChat       ${config.wechat.apiBase} (appid ${config.wechat.appId})`,
];
if (config.ops.adminPasswordIsDefault) lines.push(`  Ops login    admin / ${config.ops.adminPassword}   (sandbox default; set OPS_ADMIN_PASSWORD)`);
console.log(lines.join('\n') + '\n');

closeWithGrace({ delay: 10_000 }, async ({ err }) => {
  if (err) app.log.error({ err }, 'shutting down after error');
  await app.close();
});
