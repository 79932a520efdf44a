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
import { createCodeBatchService } from './campaigns/batches.ts';
import { batchRoutes } from './campaigns/batch-routes.ts';
import { createCampaignAdmin } from './campaigns/admin.ts';
import { campaignPublicRoutes, campaignRoutes } from './campaigns/routes.ts';
import { createExtensions, createRouter, type BotExtensions } from './bot/router.ts';
import { createBotService } from './bot/service.ts';
import { createDialogStore } from './bot/dialogs.ts';
import { createRedemptionService } from './campaigns/service.ts';
import { registerCampaignChat } from './campaigns/chat.ts';
import { webhookRoutes } from './bot/routes.ts';
import { createOpsService } from './ops/service.ts';
import { opsAuthPlugin } from './ops/auth.ts';
import { opsRoutes } from './ops/routes.ts';
import { startJobs } from './jobs/scheduler.ts';
import { createLedger } from './members/ledger.ts';
import { createPhones } from './members/phones.ts';
import { createFulfilmentService } from './fulfilment/service.ts';
import { registerFulfilmentChat } from './fulfilment/chat.ts';
import { fulfilmentMpRoutes, fulfilmentOpsRoutes, payNotifyRoutes } from './fulfilment/routes.ts';
import { createPayFromConfig, createPaySandboxState, createTopupFromConfig, createTopupSandboxState, fulfilmentConfigFrom } from './fulfilment/wiring.ts';
import { paySandboxPlugin } from './wechat/sandbox/pay.ts';
// fraud
import { createFraudService } from './fraud/service.ts';
import { fraudRoutes } from './fraud/routes.ts';
import { DEFAULT_MODEL } from './fraud/scoring.ts';
import { topupSandboxPlugin } from './wechat/sandbox/topup.ts';
// commerce (mall, orders, coupons, recommendations)
import { createMallService } from './mall/service.ts';
import { mallMpRoutes, mallOpsRoutes, mallPayNotifyRoutes } from './mall/routes.ts';
import { createCouponService } from './coupons/service.ts';
import { couponMpRoutes, couponOpsRoutes, storeStaffRoutes } from './coupons/routes.ts';
import { createAudienceService } from './audience/service.ts';
import { audienceMpRoutes, audienceOpsRoutes } from './audience/routes.ts';
// members core
import { mpAuthPlugin } from './members/auth.ts';
import { createSessionService } from './members/sessions.ts';
import { createMemberHooks, createMembersService } from './members/service.ts';
import { memberMpRoutes } from './members/routes.ts';
import { memberOpsRoutes } from './members/ops-routes.ts';
import { createTiers } from './members/tiers.ts';
import { createEarn } from './members/earn.ts';
import { createRedemptionEarn } from './members/redemption-earn.ts';
import { createFollowerLink } from './members/link.ts';
import { createMemberPoints } from './members/points.ts';
import { registerMemberChat, createReminderSender } from './members/chat.ts';
import { createProfile } from './members/profile.ts';
import { createInvites } from './members/invites.ts';
import { memberEvents } from './members/tables.ts';
// mini-program redemption
import { createMpRedeemService } from './campaigns/mp-redeem.ts';
import { mpRedeemRoutes } from './campaigns/mp-routes.ts';
import { createMinaClient, type MinaClient } from './wechat/mina-client.ts';
import { AppError } from './platform/errors.ts';

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
    trustProxy: config.trustProxy,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const database = opts.database ?? (await openDatabase({ url: config.db.url, dataDir: config.db.dataDir, poolSize: config.db.poolSize }));
  const ownsDatabase = !opts.database;
  await database.migrate();
  const { db } = database;
  const metrics: Metrics = createMetrics();

  // ---- The WeChat boundary ----
  const sandbox = opts.mountSandbox
    ? new SandboxState({
      appId: config.wechat.appId, appSecret: config.wechat.appSecret,
      miniProgram: config.miniprogram.appId && config.miniprogram.appSecret ? { appId: config.miniprogram.appId, appSecret: config.miniprogram.appSecret } : undefined,
    })
    : undefined;
  // WeChat Pay and top-up sandboxes beside it (only with sandbox WeChat Pay keys: never next to live credentials).
  const paySandbox = opts.mountSandbox && config.wechatPay.mode === 'sandbox' ? createPaySandboxState(config) : undefined;
  const topupSandbox = opts.mountSandbox ? createTopupSandboxState(config) : undefined;
  const apiBase = config.wechat.apiBase ?? `http://127.0.0.1:${config.port}/sandbox`;
  const onApiError = (path: string, errcode: number) => metrics.wechatApiErrors.inc({ path, errcode: String(errcode) });
  const tokens = createTokenManager({ db, appId: config.wechat.appId, clock, fetchToken: stableTokenFetcher(apiBase, config.wechat.appId, config.wechat.appSecret, { onApiError }) });
  const wechat = new WeChatApiClient(config.wechat.appId, config.wechat.appSecret, apiBase, tokens, { onApiError });

  // ---- Capabilities ----
  let onUnionid: (openid: string, unionid: string) => Promise<unknown> = async () => undefined; // bound to members below
  const followers = createFollowersService({ db, followerInfo: (openid) => wechat.followerInfo(openid), onUnionid: (o, u) => onUnionid(o, u), log: app.log });
  const messaging = createMessagingService({ db, wechat, clock, log: app.log });
  const replies = createRepliesService({ db, clock, cacheTtlMs: config.rulesCacheTtlMs, wechat: () => wechat, log: app.log });
  const campaignAdmin = createCampaignAdmin({ db, clock });
  const ops = createOpsService({ db, clock, tokenTtlS: config.ops.tokenTtlS });
  const batches = createCodeBatchService({ database, codeKey: config.codeKey, clock });
  const dialogs = createDialogStore(database);
  const ext = createExtensions();
  let kickFulfilment: () => void = () => undefined; // bound to the fulfilment worker once it exists
  let onRedeemed: (openid: string, redemptionId: string) => void = () => undefined; // bound to the members' earn rule below
  // ---- fraud: scoring hooks in the redemption and phone flows, review queue, blacklist, model versions ----
  const fraud = createFraudService({
    database, clock, log: app.log, piiKey: config.piiKey, cacheTtlMs: config.fraud.cacheTtlMs, onFulfilmentQueued: () => kickFulfilment(),
    defaults: { ...DEFAULT_MODEL, thresholds: { ...DEFAULT_MODEL.thresholds, hold: config.fraud.hold, block: config.fraud.block, holdByKind: { ...DEFAULT_MODEL.thresholds.holdByKind, cash: config.fraud.cashHold } } },
    audit: (actor, entry, ctx, tx) => ops.audit(actor, entry, ctx, tx),
    notify: (openid, content, key) => messaging.send(openid, { type: 'text', content }, key),
  });
  const fraudHooks = config.fraud.enabled ? fraud : undefined;
  const redemption = createRedemptionService({
    database, clock, log: app.log, codeKey: config.codeKey, dialogs, cacheTtlMs: config.rulesCacheTtlMs, onFulfilmentQueued: () => kickFulfilment(), fraud: fraudHooks,
    onRedeemed: (openid, redemptionId) => onRedeemed(openid, redemptionId),
  });
  registerCampaignChat(ext, redemption);
  const ledger = createLedger({ db, clock });
  const phones = createPhones({ db, piiKey: config.piiKey, clock });
  const fulfilment = createFulfilmentService({
    database, clock, log: app.log, ledger, phones, messaging, dialogs,
    pay: createPayFromConfig(config), topup: createTopupFromConfig(config), config: fulfilmentConfigFrom(config), fraud: fraudHooks,
  });
  kickFulfilment = () => fulfilment.kick();

  // ---- members core: mini-program login, sessions, phone, membership ----
  const miniAppId = config.miniprogram.appId;
  const miniSecret = config.miniprogram.appSecret;
  const mina: MinaClient | undefined = miniAppId && miniSecret
    ? createMinaClient({
      appId: miniAppId, appSecret: miniSecret, baseUrl: apiBase, onApiError,
      tokens: createTokenManager({ db, appId: miniAppId, clock, fetchToken: stableTokenFetcher(apiBase, miniAppId, miniSecret, { onApiError }) }),
    })
    : undefined;
  const minaOrFail = () => {
    if (!mina) throw new AppError('INTERNAL', 'Mini program is not configured (WECHAT_MINIPROGRAM_APPID / WECHAT_MINIPROGRAM_APPSECRET)');
    return mina;
  };
  const sessions = createSessionService({ db, clock, ttlS: config.miniprogram.sessionTtlS, refreshTtlS: config.miniprogram.refreshTtlS });
  const memberHooks = createMemberHooks();
  const members = createMembersService({ db, clock, piiKey: config.piiKey, sessions, ledger, mina: minaOrFail, hooks: memberHooks });
  const tiers = createTiers({ db, clock, cacheTtlMs: config.rulesCacheTtlMs });
  const earn = createEarn({
    db, clock, ledger, tiers, piiKey: config.piiKey, cacheTtlMs: config.rulesCacheTtlMs,
    remind: createReminderSender({ messaging, mina, templateId: config.miniprogram.pointsExpiryTemplateId, log: app.log }),
  });
  const memberPoints = createMemberPoints({ db, ledger, earn, tiers, members, now: () => clock.now() });
  memberHooks.phoneBound.push(async (m) => void (await earn.earn(m.openid, 'bind_phone', String(m.id))));
  // Fraud hook point for members: the fraud capability's verdict on the bound phone (shared by a farm, blacklisted)
  // is recorded as a `fraud_hold` member event; invites.onBecameMember withholds the inviter's reward for such invitees.
  memberHooks.phoneBound.push(async (m, phone) => {
    if (fraudHooks && (await fraudHooks.onPhoneBound(m.openid, phone, clock.now()))) {
      await db.insert(memberEvents).values({ memberId: m.id, kind: 'fraud_hold', detail: { at: 'phone_bound' }, createdAt: clock.now() });
      await fraudHooks.lookBack([m.openid], clock.now());
    }
  });
  const profile = createProfile({ db, clock, piiKey: config.piiKey, sessions, onCompleted: async (m) => void (await earn.earn(m.openid, 'complete_profile', String(m.id))) });
  const invites = createInvites({ db, clock, earn, mina: minaOrFail, envVersion: config.env === 'production' ? 'release' : 'develop' });
  memberHooks.created.push(async (m, ctx) => {
    // A bad invite code never fails a login: the invite is simply not recorded.
    if (ctx.inviteCode) await invites.accept(m, ctx.inviteCode).catch(() => undefined);
  });
  memberHooks.becameMember.push(async (m) => void (await invites.onBecameMember(m)));
  registerMemberChat(ext, earn, app.log);
  const followerLink = createFollowerLink({ db, clock, log: app.log });
  onUnionid = (openid, unionid) => followerLink.linkFollower(openid, unionid);
  const redemptionEarn = createRedemptionEarn({ db, clock, earn, log: app.log });
  onRedeemed = (openid, redemptionId) => redemptionEarn.onRedeemed(openid, redemptionId);
  // ---- mini-program redemption: the chat's redemption and draw as structured JSON ----
  const mpRedeem = createMpRedeemService({ database, clock, log: app.log, codeKey: config.codeKey, cacheTtlMs: config.rulesCacheTtlMs, onFulfilmentQueued: () => kickFulfilment(), fraud: fraudHooks, onRedeemed: (openid, redemptionId) => onRedeemed(openid, redemptionId) });

  registerFulfilmentChat(ext, fulfilment);
  opts.configureBot?.(ext);
  const bot = createBotService({ database, clock, log: app.log, router: createRouter({ replies, followers, ext }), messaging, replyBudgetMs: config.webhook.replyBudgetMs });

  // ---- commerce: points mall (+ WeChat Pay JSAPI), store-bound coupons, recommendations ----
  const mall = createMallService({
    database, clock, ledger, pay: createPayFromConfig(config), log: app.log,
    config: {
      miniprogramAppId: config.miniprogram.appId,
      notifyUrl: config.commerce.jsapiNotifyUrl ?? (config.wechatPay.mode === 'sandbox' ? `http://127.0.0.1:${config.port}/pay/notify/jsapi` : undefined),
      payTtlMinutes: config.commerce.payTtlMinutes, piiKey: config.piiKey, tiers: ['normal', 'silver', 'gold', 'diamond'],
    },
  });
  const coupons = createCouponService({ database, clock, piiKey: config.piiKey, qrTtlS: config.commerce.couponQrTtlS });
  const audience = createAudienceService({ database, clock });
  await audience.seedDefaults();

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
    await api.register(batchRoutes, { batches });
    await api.register(campaignRoutes, { campaignAdmin });
    await api.register(fulfilmentOpsRoutes, { fulfilment });
    await api.register(fraudRoutes, { fraud }); // fraud
    // commerce
    await api.register(mallOpsRoutes, { mall });
    await api.register(couponOpsRoutes, { coupons });
    await api.register(audienceOpsRoutes, { audience });
    // members core
    await api.register(memberOpsRoutes, { earn, tiers, members, points: memberPoints });
  }, { prefix: '/api/ops' });
  await app.register(async (mp) => {
    await mp.register(mpAuthPlugin, { sessions });
    await mp.register(fulfilmentMpRoutes, { fulfilment });
    // members core
    await mp.register(memberMpRoutes, { members, points: memberPoints, profile, invites });
    // commerce
    await mp.register(mallMpRoutes, { mall });
    await mp.register(couponMpRoutes, { coupons });
    await mp.register(audienceMpRoutes, { audience });
    // mini-program redemption
    await mp.register(mpRedeemRoutes, { mpRedeem });
  }, { prefix: '/api/mp' });
  await app.register(payNotifyRoutes, { prefix: '/pay/notify', fulfilment });
  // commerce: WeChat Pay's JSAPI payment notification; store staff with their own tokens
  await app.register(mallPayNotifyRoutes, { prefix: '/pay/notify', mall });
  await app.register(storeStaffRoutes, { prefix: '/api/store', coupons });
  await app.register(campaignPublicRoutes, { prefix: '/api/public', campaignAdmin });
  if (sandbox) await app.register(sandboxPlugin(sandbox), { prefix: '/sandbox' });
  if (paySandbox) await app.register(paySandboxPlugin(paySandbox), { prefix: '/sandbox/pay' });
  if (topupSandbox) await app.register(topupSandboxPlugin(topupSandbox), { prefix: '/sandbox/topup' });

  // ---- Jobs ----
  const jobs = config.jobsEnabled
    ? startJobs([
        { name: 'cs-outbox', schedule: '*/5 * * * * *', run: () => messaging.runDue() },
        { name: 'dedup-prune', schedule: '17 * * * *', run: () => bot.pruneDedup() },
        { name: 'fulfilment-due', schedule: '*/5 * * * * *', run: async () => void (await fulfilment.runDue()) },
        { name: 'fulfilment-expire', schedule: '0 * * * * *', run: async () => void (await fulfilment.expireUnconfirmed()) },
        // commerce: unpaid points + cash orders past their deadline → closed at WeChat Pay, points back
        { name: 'mall-expire', schedule: '30 * * * * *', run: async () => void (await mall.expireUnpaid()) },
        { name: 'mall-refunds', schedule: '45 * * * * *', run: async () => void (await mall.runRefunds()) },
        // members core: nightly (Beijing 02:10 / 02:40 / 03:10) expiry of due points lots, reminders 7 days ahead, tiers
        { name: 'points-expire', schedule: '10 18 * * *', run: async () => void (await earn.expireDue(100_000)) },
        { name: 'points-expiry-remind', schedule: '40 18 * * *', run: async () => void (await earn.remindExpiring()) },
        { name: 'member-tiers', schedule: '10 19 * * *', run: async () => void (await tiers.runScheduled()) },
        { name: 'mp-sessions-prune', schedule: '23 * * * *', run: async () => void (await sessions.prune()) },
        // members: `redemption` earn credits lost to a crash or an error (only while the rule is enabled)
        { name: 'redemption-earn-catch-up', schedule: '20 * * * * *', run: async () => void (await redemptionEarn.catchUp()) },
      ], app.log)
    : undefined;

  app.addHook('onClose', async () => {
    await jobs?.stop();
    await bot.drain();
    await redemptionEarn.drain();
    await followers.drain();
    await fraud.drain();
    await fulfilment.close();
    if (ownsDatabase) await database.close();
  });

  return { app, database, services: { bot, dialogs, redemption, messaging, replies, followers, ops, wechat, tokens, campaignAdmin, batches, ledger, phones, fulfilment, fraud, sessions, members, mina, tiers, earn, memberPoints, profile, invites, redemptionEarn, followerLink, mall, coupons, audience, mpRedeem }, sandbox, paySandbox, topupSandbox, metrics, apiBase };
}

export type App = Awaited<ReturnType<typeof buildApp>>;
export type { FastifyInstance };
