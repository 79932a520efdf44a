/**
 * buildApp(config) → a Fastify instance with every capability registered. Read top to bottom, this file
 * is the table of contents: cross-cutting plugins, the WeChat boundary, each capability, ops, jobs.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { randomUUID } from 'node:crypto';
import type { Config } from './config.ts';
import { openDatabase, type Database } from './db/client.ts';
import { systemClock, type Clock } from './platform/clock.ts';
import { createMetrics, type Metrics } from './platform/metrics.ts';
import { platformPlugin } from './platform/plugin.ts';
import { stableTokenFetcher, WeChatApiClient } from './wechat/api-client.ts';
import { createTokenManager } from './wechat/token.ts';
import { SandboxState, sandboxPlugin } from './wechat/sandbox/platform.ts';
import { createFollowersService } from './followers/service.ts';
import { createMessagingService } from './messaging/service.ts';
import { createRepliesService } from './replies/service.ts';
import { repliesRoutes } from './replies/routes.ts';
import { createExtensions, createRouter, type BotExtensions } from './bot/router.ts';
import { createBotService } from './bot/service.ts';
import { webhookRoutes } from './bot/routes.ts';
import { createOpsService } from './ops/service.ts';
import { opsAuthPlugin } from './ops/auth.ts';
import { opsRoutes } from './ops/routes.ts';
import { startJobs } from './jobs/scheduler.ts';

export interface BuildOptions {
  /** An open database (tests share one per file); otherwise opened from config and closed with the app. */
  database?: Database;
  clock?: Clock;
  /** Mount the WeChat sandbox at /sandbox on this server (npm start in sandbox mode). */
  mountSandbox?: boolean;
  /** Capability extensions to the bot (dialogs, flows); tests use them to add slow or custom flows. */
  configureBot?: (ext: BotExtensions) => void;
  logger?: boolean | object;
}

export async function buildApp(config: Config, opts: BuildOptions = {}) {
  const clock = opts.clock ?? systemClock;
  const app = Fastify({
    logger: opts.logger ?? { level: config.logLevel, redact: ['req.headers.authorization', 'req.query.echostr'] },
    genReqId: (req) => (typeof req.headers['x-request-id'] === 'string' && req.headers['x-request-id'].length <= 64 ? req.headers['x-request-id'] : randomUUID()),
    requestIdHeader: false,
    bodyLimit: 1_048_576,
    trustProxy: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const database = opts.database ?? (await openDatabase({ url: config.db.url, dataDir: config.db.dataDir, poolSize: config.db.poolSize }));
  const ownsDatabase = !opts.database;
  await database.migrate();
  const { db } = database;
  const metrics: Metrics = createMetrics();

  // ---- The WeChat boundary ----
  const sandbox = opts.mountSandbox ? new SandboxState({ appId: config.wechat.appId, appSecret: config.wechat.appSecret }) : undefined;
  const apiBase = config.wechat.apiBase ?? `http://127.0.0.1:${config.port}/sandbox`;
  const onApiError = (path: string, errcode: number) => metrics.wechatApiErrors.inc({ path, errcode: String(errcode) });
  const tokens = createTokenManager({ db, appId: config.wechat.appId, clock, fetchToken: stableTokenFetcher(apiBase, config.wechat.appId, config.wechat.appSecret, { onApiError }) });
  const wechat = new WeChatApiClient(config.wechat.appId, config.wechat.appSecret, apiBase, tokens, { onApiError });

  // ---- Capabilities ----
  const followers = createFollowersService({ db });
  const messaging = createMessagingService({ db, wechat, clock, log: app.log });
  const replies = createRepliesService({ db, clock, cacheTtlMs: config.rulesCacheTtlMs, wechat: () => wechat });
  const ops = createOpsService({ db, clock, tokenTtlS: config.ops.tokenTtlS });
  const ext = createExtensions();
  opts.configureBot?.(ext);
  const bot = createBotService({ database, clock, log: app.log, router: createRouter({ replies, followers, ext }), messaging, replyBudgetMs: config.webhook.replyBudgetMs });

  await replies.seedDefaults(config.wechat.sandbox);
  await ops.ensureAdmin(config.ops.adminPassword);

  // ---- HTTP: cross-cutting first, then each door ----
  await app.register(swagger, {
    openapi: {
      info: { title: 'WeChat brand backend', version: '0.1.0', description: 'Ops API (/api/ops) and mini program API (/api/mp). The WeChat webhook is POST /wechat (XML).' },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await app.register(platformPlugin, { metrics, ready: () => database.ping() });
  await app.register(webhookRoutes, { config, bot, metrics, now: () => clock.now() });
  await app.register(async (api) => {
    await api.register(opsAuthPlugin, { ops });
    await api.register(opsRoutes, { ops });
    await api.register(repliesRoutes, { replies });
  }, { prefix: '/api/ops' });
  if (sandbox) await app.register(sandboxPlugin(sandbox), { prefix: '/sandbox' });

  // ---- Jobs ----
  const jobs = config.jobsEnabled
    ? startJobs([
        { name: 'cs-outbox', schedule: '*/5 * * * * *', run: () => messaging.runDue() },
        { name: 'dedup-prune', schedule: '17 * * * *', run: () => bot.pruneDedup() },
      ], app.log)
    : undefined;

  app.addHook('onClose', async () => {
    await jobs?.stop();
    await bot.drain();
    if (ownsDatabase) await database.close();
  });

  return { app, database, services: { bot, messaging, replies, followers, ops, wechat, tokens }, sandbox, metrics, apiBase };
}

export type App = Awaited<ReturnType<typeof buildApp>>;
export type { FastifyInstance };
