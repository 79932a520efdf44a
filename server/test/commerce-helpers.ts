/**
 * Commerce test helpers: an app with the pay sandbox, ops headers, and members logged in through the mini program's
 * login (mp-helpers) with points credited through the ledger service.
 */
import { randomUUID } from 'node:crypto';
import { adminHeaders, buildTestApp, type TestAppOptions } from './helpers.ts';
import { mpLogin } from './mp-helpers.ts';

type T = Parameters<typeof buildTestApp>[0];

export async function commerceApp(t: T, opts: TestAppOptions = {}) {
  const h = await buildTestApp(t, opts);
  const ops = await adminHeaders(h.app);
  const inject = (o: { method: string; url: string; headers?: Record<string, string>; payload?: unknown }) => h.app.inject(o as any);

  /** A logged-in member holding `points`. */
  async function member(points = 0, opts: { unionid?: string } = {}) {
    const login = await mpLogin(h, opts.unionid ? { unionid: opts.unionid } : {});
    const who = (await h.services.sessions.authenticate(login.token))!;
    if (points > 0) await h.services.ledger.credit(who.openid, points, `test:grant:${randomUUID()}`, 'test_grant');
    return { ...login, who, balance: () => h.services.ledger.balance(who.openid) };
  }

  async function createItem(body: Record<string, unknown>) {
    const res = await inject({ method: 'POST', url: '/api/ops/mall/items', headers: ops, payload: { status: 'active', ...body } });
    if (res.statusCode !== 200) throw new Error(`createItem: ${res.statusCode} ${res.body}`);
    return res.json();
  }

  const order = (m: { headers: Record<string, string> }, payload: Record<string, unknown>) =>
    inject({ method: 'POST', url: '/api/mp/mall/orders', headers: m.headers, payload: { quantity: 1, clientKey: randomUUID(), ...payload } });

  return { ...h, ops, inject, member, createItem, order };
}

export const ADDRESS = { name: '张三', phone: '13800138000', province: '上海市', city: '上海市', district: '浦东新区', detail: '世纪大道 100 号' };
