/**
 * From configuration to the fulfilment providers: the WeChat Pay client (live keys, or the sandbox's keys from
 * server/sandbox-keys/), the top-up client, the sandboxes mounted by `npm start`, and the service settings.
 */
import type { Config } from '../config.ts';
import { createPayClient, type PayClient } from '../wechat/pay/client.ts';
import { PaySandboxState } from '../wechat/sandbox/pay.ts';
import { sandboxPayKeys } from '../wechat/sandbox/pay-keys.ts';
import { TopupSandboxState } from '../wechat/sandbox/topup.ts';
import { createHttpTopupProvider, type TopupProvider } from './topup.ts';
import type { FulfilmentConfig } from './service.ts';

/** This server as seen from itself (sandbox defaults: it talks to its own /sandbox/* mounts). */
const self = (config: Config) => `http://127.0.0.1:${config.port}`;

export function payApiBase(config: Config): string {
  return config.wechatPay.apiBase ?? `${self(config)}/sandbox/pay`;
}

export function payNotifyUrl(config: Config): string | undefined {
  return config.wechatPay.notifyUrl ?? (config.wechatPay.mode === 'sandbox' ? `${self(config)}/pay/notify/transfer` : undefined);
}

export function topupApiBase(config: Config): string | undefined {
  return config.topup.apiBase ?? (config.wechat.sandbox ? `${self(config)}/sandbox/topup` : undefined);
}

/** null when WeChat Pay is off (cash prizes then fail visibly). */
export function createPayFromConfig(config: Config): PayClient | null {
  const p = config.wechatPay;
  if (p.mode === 'off') return null;
  const sandboxKeys = p.mode === 'sandbox' ? sandboxPayKeys() : undefined;
  const publicKeyPem = p.publicKeyPem ?? sandboxKeys?.platformPublicKeyPem;
  return createPayClient({
    baseUrl: payApiBase(config),
    mchid: p.mchid!,
    serialNo: p.serialNo!,
    privateKey: p.privateKeyPem ?? sandboxKeys!.merchantPrivateKeyPem,
    ...(p.publicKeyId && publicKeyPem ? { publicKeys: { [p.publicKeyId]: publicKeyPem } } : {}),
    ...(p.platformCertPem && p.platformCertSerial ? { platformCertificates: { [p.platformCertSerial]: p.platformCertPem } } : {}),
    apiV3Key: p.apiV3Key!,
    appId: p.appId,
    timeoutMs: p.timeoutMs,
  });
}

/** null when no provider is configured outside the sandbox (top-ups then fail visibly). */
export function createTopupFromConfig(config: Config): TopupProvider | null {
  const base = topupApiBase(config);
  return base ? createHttpTopupProvider({ baseUrl: base, apiKey: config.topup.apiKey, timeoutMs: config.topup.timeoutMs }) : null;
}

/** The pay sandbox `npm start` mounts at /sandbox/pay (sandbox mode only). */
export function createPaySandboxState(config: Config): PaySandboxState {
  const keys = sandboxPayKeys();
  return new PaySandboxState({
    mchid: config.wechatPay.mchid!,
    merchantPublicKeyPem: keys.merchantPublicKeyPem,
    platformPrivateKeyPem: keys.platformPrivateKeyPem,
    platformPublicKeyId: config.wechatPay.publicKeyId!,
    apiV3Key: config.wechatPay.apiV3Key!,
    allowHttpNotifyUrl: true,
  });
}

export function createTopupSandboxState(config: Config): TopupSandboxState {
  return new TopupSandboxState(config.topup.apiKey ? { apiKey: config.topup.apiKey } : {});
}

/**
 * A job's lease must outlast its work: at most two provider calls one after the other (query, then create or
 * recharge; cancel, then query), each up to its timeout (up to 60 s each by configuration), plus the database work.
 * Shorter, another tick could reclaim the job mid-call and send the same out number again beside it.
 */
export function fulfilmentLeaseMs(config: Config): number {
  return Math.max(60_000, 2 * Math.max(config.wechatPay.timeoutMs, config.topup.timeoutMs) + 15_000);
}

export function fulfilmentConfigFrom(config: Config): FulfilmentConfig {
  return {
    leaseMs: fulfilmentLeaseMs(config),
    piiKey: config.piiKey,
    miniprogramAppId: config.miniprogram.appId,
    linkHref: config.publicUrl,
    notifyUrl: payNotifyUrl(config),
    transfer: config.wechatPay.transfer,
  };
}
