/**
 * The ops API end to end: login and roles, keyword rules / welcome / default / menu keys as the webhook
 * sees them (through the WeChat simulator), menus published to the sandbox, the audit log and the OpenAPI doc.
 */
import t from 'tap';
import { adminHeaders, buildTestApp, count } from './helpers.ts';

type Injectable = Awaited<ReturnType<typeof buildTestApp>>['app'];
type Headers = { authorization: string };

/** Log in as any user; returns the auth headers. */
async function login(app: Injectable, username: string, password: string): Promise<Headers> {
  const res = await app.inject({ method: 'POST', url: '/api/ops/login', payload: { username, password } });
  if (res.statusCode !== 200) throw new Error(`login ${username} failed: ${res.statusCode} ${res.body}`);
  return { authorization: `Bearer ${res.json().token}` };
}

/** The reply text the webhook falls back to, as configured right now. */
async function fallbackText(app: Injectable, headers: Headers): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/api/ops/replies', headers });
  const setting = (res.json() as Array<{ name: string; reply: { type: string; content?: string } }>).find((s) => s.name === 'default');
  return setting!.reply.content!;
}

const text = (content: string) => ({ type: 'text' as const, content });

t.test('login', async (t) => {
  const { app } = await buildTestApp(t);

  t.test('login › the right password returns a bearer token and the user', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/api/ops/login', payload: { username: 'admin', password: 'sandbox-admin' } });
    t.equal(res.statusCode, 200);
    const body = res.json();
    t.type(body.token, 'string');
    t.ok(body.token.length >= 32, 'token is long enough');
    t.ok(Date.parse(body.expiresAt) > Date.now(), 'expires in the future');
    t.match(body.user, { username: 'admin', role: 'admin', disabled: false });
    t.notOk('passwordHash' in body.user, 'no password hash in the answer');
    t.notOk(res.body.includes('scrypt$'), 'no hash anywhere in the body');
  });

  t.test('login › a wrong password is 401 BAD_CREDENTIALS', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/api/ops/login', payload: { username: 'admin', password: 'not-the-password' } });
    t.equal(res.statusCode, 401);
    t.equal(res.json().code, 'BAD_CREDENTIALS');
  });

  t.test('login › an unknown user is 401 BAD_CREDENTIALS, same as a wrong password', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/api/ops/login', payload: { username: 'nobody', password: 'sandbox-admin' } });
    t.equal(res.statusCode, 401);
    t.equal(res.json().code, 'BAD_CREDENTIALS');
  });

  t.test('login › a protected route without a bearer token is 401', async (t) => {
    const none = await app.inject({ method: 'GET', url: '/api/ops/keyword-rules' });
    t.equal(none.statusCode, 401);
    t.equal(none.json().code, 'UNAUTHENTICATED');
    const basic = await app.inject({ method: 'GET', url: '/api/ops/me', headers: { authorization: 'Basic YWRtaW46c2FuZGJveC1hZG1pbg==' } });
    t.equal(basic.statusCode, 401, 'basic auth is not accepted');
  });

  t.test('login › an invalid bearer token is 401', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/api/ops/me', headers: { authorization: 'Bearer not-a-real-token' } });
    t.equal(res.statusCode, 401);
    t.equal(res.json().code, 'UNAUTHENTICATED');
    const write = await app.inject({ method: 'POST', url: '/api/ops/keyword-rules', headers: { authorization: 'Bearer not-a-real-token' }, payload: { name: 'x', matchType: 'exact', pattern: 'x', reply: text('x') } });
    t.equal(write.statusCode, 401, 'writes too');
  });

  t.test('login › /api/ops/me returns the actor', async (t) => {
    const headers = await adminHeaders(app);
    const res = await app.inject({ method: 'GET', url: '/api/ops/me', headers });
    t.equal(res.statusCode, 200);
    const me = res.json();
    t.match(me, { username: 'admin', role: 'admin' });
    t.type(me.id, 'number');
  });

  t.test('login › logout revokes the token', async (t) => {
    const headers = await adminHeaders(app);
    const out = await app.inject({ method: 'POST', url: '/api/ops/logout', headers });
    t.equal(out.statusCode, 204);
    const me = await app.inject({ method: 'GET', url: '/api/ops/me', headers });
    t.equal(me.statusCode, 401);
  });
});

t.test('users & roles', async (t) => {
  const { app } = await buildTestApp(t);
  const admin = await adminHeaders(app);
  const rule = { name: 'role test', matchType: 'exact', pattern: 'roletest', reply: text('role test reply') };

  const op = await app.inject({ method: 'POST', url: '/api/ops/users', headers: admin, payload: { username: 'olivia', password: 'operator-pass-1', role: 'operator' } });
  const an = await app.inject({ method: 'POST', url: '/api/ops/users', headers: admin, payload: { username: 'ann.analyst', password: 'analyst-pass-1', role: 'analyst' } });

  t.test('users & roles › the admin creates an operator and an analyst (201)', async (t) => {
    t.equal(op.statusCode, 201);
    t.match(op.json(), { username: 'olivia', role: 'operator', disabled: false });
    t.type(op.json().id, 'number');
    t.notOk('passwordHash' in op.json());
    t.equal(an.statusCode, 201);
    t.match(an.json(), { username: 'ann.analyst', role: 'analyst' });
    const list = await app.inject({ method: 'GET', url: '/api/ops/users', headers: admin });
    t.same((list.json() as Array<{ username: string }>).map((u) => u.username).sort(), ['admin', 'ann.analyst', 'olivia']);
  });

  t.test('users & roles › a duplicate username is 409', async (t) => {
    const dup = await app.inject({ method: 'POST', url: '/api/ops/users', headers: admin, payload: { username: 'olivia', password: 'another-pass-2', role: 'analyst' } });
    t.equal(dup.statusCode, 409);
    t.equal(dup.json().code, 'CONFLICT');
  });

  t.test('users & roles › an analyst can read keyword rules but not write them', async (t) => {
    const headers = await login(app, 'ann.analyst', 'analyst-pass-1');
    const read = await app.inject({ method: 'GET', url: '/api/ops/keyword-rules', headers });
    t.equal(read.statusCode, 200);
    t.ok(Array.isArray(read.json()));
    const write = await app.inject({ method: 'POST', url: '/api/ops/keyword-rules', headers, payload: rule });
    t.equal(write.statusCode, 403);
    t.equal(write.json().code, 'FORBIDDEN');
    const users = await app.inject({ method: 'POST', url: '/api/ops/users', headers, payload: { username: 'sneaky', password: 'sneaky-pass-1', role: 'admin' } });
    t.equal(users.statusCode, 403, 'nor create users');
  });

  t.test('users & roles › an operator can write keyword rules but not manage users', async (t) => {
    const headers = await login(app, 'olivia', 'operator-pass-1');
    const write = await app.inject({ method: 'POST', url: '/api/ops/keyword-rules', headers, payload: rule });
    t.equal(write.statusCode, 201);
    t.match(write.json(), { name: 'role test', pattern: 'roletest' });
    const users = await app.inject({ method: 'GET', url: '/api/ops/users', headers });
    t.equal(users.statusCode, 403);
  });

  t.test('users & roles › disabling a user revokes their token and blocks login', async (t) => {
    const headers = await login(app, 'olivia', 'operator-pass-1');
    t.equal((await app.inject({ method: 'GET', url: '/api/ops/me', headers })).statusCode, 200);
    const patch = await app.inject({ method: 'PATCH', url: `/api/ops/users/${op.json().id}`, headers: admin, payload: { disabled: true } });
    t.equal(patch.statusCode, 200);
    t.equal(patch.json().disabled, true);
    const after = await app.inject({ method: 'GET', url: '/api/ops/me', headers });
    t.equal(after.statusCode, 401, 'the old token no longer works');
    const again = await app.inject({ method: 'POST', url: '/api/ops/login', payload: { username: 'olivia', password: 'operator-pass-1' } });
    t.equal(again.statusCode, 401);
    t.equal(again.json().code, 'BAD_CREDENTIALS');
  });

  t.test('users & roles › patching an unknown user is 404', async (t) => {
    const res = await app.inject({ method: 'PATCH', url: '/api/ops/users/99999', headers: admin, payload: { disabled: true } });
    t.equal(res.statusCode, 404);
  });
});

t.test('keyword rules', async (t) => {
  const { app, sim } = await buildTestApp(t);
  const headers = await adminHeaders(app);
  const fallback = await fallbackText(app, headers);
  const create = (body: Record<string, unknown>) => app.inject({ method: 'POST', url: '/api/ops/keyword-rules', headers, payload: body });

  t.test('keyword rules › an exact rule matches the whole message, trimmed and case-insensitive', async (t) => {
    const res = await create({ name: 'hello', matchType: 'exact', pattern: 'Hello', reply: text('exact: hi there') });
    t.equal(res.statusCode, 201);
    t.match(res.json(), { matchType: 'exact', pattern: 'Hello', priority: 0, enabled: true, startsAt: null, endsAt: null });
    t.equal((await sim.text('oKw1', 'Hello')).content, 'exact: hi there');
    t.equal((await sim.text('oKw1', '  HELLO ')).content, 'exact: hi there');
    t.equal((await sim.text('oKw1', 'hello world')).content, fallback, 'not a partial match');
  });

  t.test('keyword rules › a contains rule matches anywhere in the message', async (t) => {
    t.equal((await create({ name: 'shipping', matchType: 'contains', pattern: '发货', reply: text('contains: 48 小时内发货') })).statusCode, 201);
    const r = await sim.text('oKw2', '请问什么时候发货呀');
    t.equal(r.msgType, 'text');
    t.equal(r.content, 'contains: 48 小时内发货');
  });

  t.test('keyword rules › a regex rule matches by pattern', async (t) => {
    t.equal((await create({ name: 'order', matchType: 'regex', pattern: '^order\\s*#?\\d{6}$', reply: text('regex: order found') })).statusCode, 201);
    t.equal((await sim.text('oKw3', 'order #123456')).content, 'regex: order found');
    t.equal((await sim.text('oKw3', 'ORDER 654321')).content, 'regex: order found', 'case-insensitive');
    t.equal((await sim.text('oKw3', 'order 12')).content, fallback);
  });

  t.test('keyword rules › a regex rule with higher priority wins over contains', async (t) => {
    const contains = await create({ name: 'coupon any', matchType: 'contains', pattern: 'coupon', priority: 1, reply: text('contains: coupon info') });
    const regex = await create({ name: 'coupon n', matchType: 'regex', pattern: 'coupon\\s+\\d+', priority: 5, reply: text('regex: coupon number') });
    t.equal(contains.statusCode, 201);
    t.equal(regex.statusCode, 201);
    t.equal((await sim.text('oKw4', 'coupon 42')).content, 'regex: coupon number');
    t.equal((await sim.text('oKw4', 'any coupon?')).content, 'contains: coupon info');

    // Lower the regex below the contains rule: now contains wins for the same message.
    const patch = await app.inject({ method: 'PATCH', url: `/api/ops/keyword-rules/${regex.json().id}`, headers, payload: { priority: 0 } });
    t.equal(patch.statusCode, 200);
    t.equal(patch.json().priority, 0);
    t.equal((await sim.text('oKw4', 'coupon 42')).content, 'contains: coupon info');

    const list = await app.inject({ method: 'GET', url: '/api/ops/keyword-rules', headers });
    const priorities = (list.json() as Array<{ priority: number }>).map((r) => r.priority);
    t.same(priorities, [...priorities].sort((a, b) => b - a), 'listed by priority, highest first');
  });

  t.test('keyword rules › a rule whose window has ended is ignored', async (t) => {
    const past = new Date(Date.now() - 60_000).toISOString();
    t.equal((await create({ name: 'old sale', matchType: 'contains', pattern: 'flashsale', priority: 100, endsAt: past, reply: text('expired sale') })).statusCode, 201);
    t.equal((await sim.text('oKw5', 'flashsale')).content, fallback);
    // An active rule with lower priority is not shadowed by the expired one.
    t.equal((await create({ name: 'new sale', matchType: 'contains', pattern: 'flashsale', priority: 1, reply: text('current sale') })).statusCode, 201);
    t.equal((await sim.text('oKw5', 'flashsale now?')).content, 'current sale');
  });

  t.test('keyword rules › a rule whose window has not started is ignored until then', async (t) => {
    const future = new Date(Date.now() + 3_600_000).toISOString();
    t.equal((await create({ name: 'future', matchType: 'exact', pattern: 'preview', startsAt: future, reply: text('not yet') })).statusCode, 201);
    t.equal((await sim.text('oKw5', 'preview')).content, fallback);
  });

  t.test('keyword rules › a disabled rule is ignored, and enabling it by PATCH takes effect', async (t) => {
    const res = await create({ name: 'off', matchType: 'exact', pattern: 'secretmenu', enabled: false, reply: text('now on') });
    t.equal(res.statusCode, 201);
    t.equal(res.json().enabled, false);
    t.equal((await sim.text('oKw6', 'secretmenu')).content, fallback);
    const patch = await app.inject({ method: 'PATCH', url: `/api/ops/keyword-rules/${res.json().id}`, headers, payload: { enabled: true } });
    t.equal(patch.statusCode, 200);
    t.equal((await sim.text('oKw6', 'secretmenu')).content, 'now on');
  });

  t.test('keyword rules › an invalid regex is 422 and nothing is stored', async (t) => {
    const before = (await app.inject({ method: 'GET', url: '/api/ops/keyword-rules', headers })).json().length;
    const res = await create({ name: 'bad', matchType: 'regex', pattern: '([a-', reply: text('never') });
    t.equal(res.statusCode, 422);
    t.equal(res.json().code, 'VALIDATION');
    t.match(res.json().message, /regular expression/);
    t.equal((await app.inject({ method: 'GET', url: '/api/ops/keyword-rules', headers })).json().length, before);
  });

  t.test('keyword rules › switching a rule to regex with a pattern that is not one is 422', async (t) => {
    const res = await create({ name: 'paren', matchType: 'contains', pattern: 'a(b', reply: text('paren') });
    t.equal(res.statusCode, 201);
    const patch = await app.inject({ method: 'PATCH', url: `/api/ops/keyword-rules/${res.json().id}`, headers, payload: { matchType: 'regex' } });
    t.equal(patch.statusCode, 422);
    t.equal((await sim.text('oKw7', 'xa(by')).content, 'paren', 'the rule is unchanged');
  });

  t.test('keyword rules › PATCH changes the reply and DELETE removes the rule', async (t) => {
    const res = await create({ name: 'faq', matchType: 'exact', pattern: 'faq', reply: text('faq v1') });
    const id = res.json().id as number;
    t.equal((await sim.text('oKw8', 'faq')).content, 'faq v1');
    const patch = await app.inject({ method: 'PATCH', url: `/api/ops/keyword-rules/${id}`, headers, payload: { reply: text('faq v2') } });
    t.equal(patch.statusCode, 200);
    t.same(patch.json().reply, text('faq v2'));
    t.equal((await sim.text('oKw8', 'faq')).content, 'faq v2');
    const del = await app.inject({ method: 'DELETE', url: `/api/ops/keyword-rules/${id}`, headers });
    t.equal(del.statusCode, 204);
    t.equal((await sim.text('oKw8', 'faq')).content, fallback);
    t.equal((await app.inject({ method: 'DELETE', url: `/api/ops/keyword-rules/${id}`, headers })).statusCode, 404);
    t.equal((await app.inject({ method: 'PATCH', url: `/api/ops/keyword-rules/${id}`, headers, payload: { priority: 3 } })).statusCode, 404);
  });

  t.test('keyword rules › a news reply rule gives a news passive reply with one article', async (t) => {
    const article = { title: '新品上市', description: '夏季限定口味', picUrl: 'https://example.com/new.jpg', url: 'https://example.com/new' };
    const res = await create({ name: 'news', matchType: 'exact', pattern: '新品', reply: { type: 'news', articles: [article, { title: '第二篇', url: 'https://example.com/2' }] } });
    t.equal(res.statusCode, 201);
    const r = await sim.text('oKw9', '新品');
    t.equal(r.msgType, 'news');
    t.equal(r.articles?.length, 1, 'one article in answer to a user message');
    t.same(r.articles?.[0], article);
    t.match(r.xml, /<ArticleCount>1<\/ArticleCount>/);
  });

  t.test('keyword rules › an invalid body is rejected', async (t) => {
    const res = await create({ name: 'x', matchType: 'fuzzy', pattern: 'x', reply: text('x') });
    t.ok(res.statusCode === 400 || res.statusCode === 422, `rejected (${res.statusCode})`);
    t.equal(res.json().code, 'VALIDATION');
  });
});

t.test('welcome & default replies', async (t) => {
  const { app, sim } = await buildTestApp(t);
  const headers = await adminHeaders(app);

  t.test('welcome & default › PUT welcome changes what a new follower gets', async (t) => {
    const res = await app.inject({ method: 'PUT', url: '/api/ops/replies/welcome', headers, payload: { reply: text('欢迎加入品牌俱乐部！') } });
    t.equal(res.statusCode, 200);
    t.match(res.json(), { name: 'welcome', enabled: true });
    const r = await sim.subscribe('oWelcome1');
    t.equal(r.msgType, 'text');
    t.equal(r.content, '欢迎加入品牌俱乐部！');
  });

  t.test('welcome & default › a disabled welcome sends no reply', async (t) => {
    const res = await app.inject({ method: 'PUT', url: '/api/ops/replies/welcome', headers, payload: { reply: text('unused'), enabled: false } });
    t.equal(res.statusCode, 200);
    const r = await sim.subscribe('oWelcome2');
    t.equal(r.status, 200);
    t.equal(r.xml, null);
  });

  t.test('welcome & default › PUT default changes the fallback', async (t) => {
    const res = await app.inject({ method: 'PUT', url: '/api/ops/replies/default', headers, payload: { reply: text('没听懂，试试回复“帮助”') } });
    t.equal(res.statusCode, 200);
    t.equal((await sim.text('oDefault1', 'blah blah')).content, '没听懂，试试回复“帮助”');
    t.equal((await fallbackText(app, headers)), '没听懂，试试回复“帮助”');
  });

  t.test('welcome & default › only welcome and default can be set', async (t) => {
    const res = await app.inject({ method: 'PUT', url: '/api/ops/replies/goodbye', headers, payload: { reply: text('bye') } });
    t.ok(res.statusCode >= 400 && res.statusCode < 500);
  });
});

t.test('menu keys', async (t) => {
  const { app, sim } = await buildTestApp(t);
  const headers = await adminHeaders(app);

  t.test('menu keys › a key mapped to a reply answers the click; deleting it answers success', async (t) => {
    const put = await app.inject({ method: 'PUT', url: '/api/ops/menu-keys/PROMO', headers, payload: { action: { type: 'reply', reply: text('本周促销：第二件半价') } } });
    t.equal(put.statusCode, 200);
    t.match(put.json(), { key: 'PROMO', action: { type: 'reply' } });
    const r = await sim.click('oMenu1', 'PROMO');
    t.equal(r.msgType, 'text');
    t.equal(r.content, '本周促销：第二件半价');

    const list = await app.inject({ method: 'GET', url: '/api/ops/menu-keys', headers });
    t.ok((list.json() as Array<{ key: string }>).some((k) => k.key === 'PROMO'));

    const del = await app.inject({ method: 'DELETE', url: '/api/ops/menu-keys/PROMO', headers });
    t.equal(del.statusCode, 204);
    // Another user: a second click by the same user in the same second is, for WeChat, a retry of the first.
    const after = await sim.click('oMenu1b', 'PROMO');
    t.equal(after.status, 200);
    t.equal(after.xml, null);
    t.equal(after.raw, 'success');
    t.equal((await app.inject({ method: 'DELETE', url: '/api/ops/menu-keys/PROMO', headers })).statusCode, 404);
  });

  t.test('menu keys › PUT replaces the action of an existing key', async (t) => {
    await app.inject({ method: 'PUT', url: '/api/ops/menu-keys/HOURS', headers, payload: { action: { type: 'reply', reply: text('9-18') } } });
    await app.inject({ method: 'PUT', url: '/api/ops/menu-keys/HOURS', headers, payload: { action: { type: 'reply', reply: text('10-22') } } });
    t.equal((await sim.click('oMenu2', 'HOURS')).content, '10-22');
  });

  t.test('menu keys › a key mapped to an unknown flow answers with the default reply', async (t) => {
    const put = await app.inject({ method: 'PUT', url: '/api/ops/menu-keys/NOFLOW', headers, payload: { action: { type: 'flow', flow: 'does-not-exist' } } });
    t.equal(put.statusCode, 200);
    t.equal((await sim.click('oMenu3', 'NOFLOW')).content, await fallbackText(app, headers));
  });
});

t.test('menus', async (t) => {
  const { app, sandbox } = await buildTestApp(t);
  const headers = await adminHeaders(app);
  const defaultButtons = [
    { type: 'click', name: '促销', key: 'PROMO' },
    { name: '会员', sub_button: [{ type: 'click', name: '会员中心', key: 'MEMBER_CENTER' }, { type: 'view', name: '官网', url: 'https://example.com/' }] },
  ];
  const vipButtons = [{ type: 'click', name: 'VIP 专享', key: 'VIP' }];

  const def = await app.inject({ method: 'POST', url: '/api/ops/menus', headers, payload: { name: '夏季菜单', kind: 'default', buttons: defaultButtons } });
  const cond = await app.inject({ method: 'POST', url: '/api/ops/menus', headers, payload: { name: 'VIP', kind: 'conditional', matchRule: { tag_id: '2' }, buttons: vipButtons } });

  t.test('menus › a default and a conditional menu are created (201)', async (t) => {
    t.equal(def.statusCode, 201);
    t.match(def.json(), { kind: 'default', matchRule: null, wechatMenuId: null, publishedAt: null });
    t.same(def.json().buttons, defaultButtons);
    t.equal(cond.statusCode, 201);
    t.match(cond.json(), { kind: 'conditional', matchRule: { tag_id: '2' } });
  });

  t.test('menus › a button name over 16 UTF-8 bytes is 422', async (t) => {
    // 6 Chinese characters = 18 bytes: within JSON Schema's character count, over WeChat's byte limit.
    const res = await app.inject({ method: 'POST', url: '/api/ops/menus', headers, payload: { name: 'long', kind: 'default', buttons: [{ type: 'click', name: '六个中文字符', key: 'LONG' }] } });
    t.equal(res.statusCode, 422);
    t.equal(res.json().code, 'VALIDATION');
    t.match(res.json().message, /16 bytes/);
    const five = await app.inject({ method: 'POST', url: '/api/ops/menus', headers, payload: { name: 'ok', kind: 'conditional', matchRule: { client_platform_type: '1' }, buttons: [{ type: 'click', name: '五个中文字', key: 'OK' }] } });
    t.equal(five.statusCode, 201, '5 Chinese characters (15 bytes) fit');
    t.equal((await app.inject({ method: 'DELETE', url: `/api/ops/menus/${five.json().id}`, headers })).statusCode, 204);
  });

  t.test('menus › a conditional menu needs a matchRule, a default menu must not have one', async (t) => {
    const noRule = await app.inject({ method: 'POST', url: '/api/ops/menus', headers, payload: { name: 'x', kind: 'conditional', buttons: vipButtons } });
    t.equal(noRule.statusCode, 422);
    const withRule = await app.inject({ method: 'POST', url: '/api/ops/menus', headers, payload: { name: 'x', kind: 'default', matchRule: { tag_id: '2' }, buttons: vipButtons } });
    t.equal(withRule.statusCode, 422);
  });

  t.test('menus › publish sends the default menu and the conditional menu to WeChat', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/api/ops/menus/publish', headers });
    t.equal(res.statusCode, 200);
    const out = res.json();
    t.equal(out.defaultMenuId, def.json().id, 'the newest default menu is published');
    t.equal(out.conditional.length, 1);
    t.equal(out.conditional[0].id, cond.json().id);

    t.same(sandbox.state.menu?.button, defaultButtons, 'the sandbox holds our default menu');
    t.equal(sandbox.state.conditional.length, 1);
    t.same(sandbox.state.conditional[0]!.button, vipButtons);
    t.same(sandbox.state.conditional[0]!.matchrule, { tag_id: '2' });
    t.equal(sandbox.state.conditional[0]!.menuid, out.conditional[0].menuid);

    const stats = await (await fetch(`${sandbox.url}/__sandbox/stats`)).json() as { counts: Record<string, number> };
    t.equal(stats.counts['/cgi-bin/menu/create'], 1);
    t.equal(stats.counts['/cgi-bin/menu/addconditional'], 1);

    const menus = (await app.inject({ method: 'GET', url: '/api/ops/menus', headers })).json() as Array<{ id: number; wechatMenuId: string | null; publishedAt: string | null }>;
    const stored = menus.find((m) => m.id === cond.json().id)!;
    t.equal(stored.wechatMenuId, out.conditional[0].menuid, 'the menuid is stored');
    t.equal(stored.publishedAt, out.publishedAt);
    t.equal(menus.find((m) => m.id === def.json().id)!.publishedAt, out.publishedAt);
  });

  t.test('menus › publishing with no default menu is 422 and calls WeChat not at all', async (t) => {
    const menus = (await app.inject({ method: 'GET', url: '/api/ops/menus', headers })).json() as Array<{ id: number; kind: string }>;
    const defaults = menus.filter((m) => m.kind === 'default');
    t.ok(defaults.length >= 2, 'the seeded default menu and ours');
    for (const m of defaults) t.equal((await app.inject({ method: 'DELETE', url: `/api/ops/menus/${m.id}`, headers })).statusCode, 204);
    const calls = sandbox.state.calls.length;
    const res = await app.inject({ method: 'POST', url: '/api/ops/menus/publish', headers });
    t.equal(res.statusCode, 422);
    t.equal(res.json().code, 'VALIDATION');
    t.equal(sandbox.state.calls.length, calls);
    t.equal((await app.inject({ method: 'DELETE', url: `/api/ops/menus/${defaults[0]!.id}`, headers })).statusCode, 404);
  });
});

t.test('audit', async (t) => {
  const { app, database } = await buildTestApp(t);
  const headers = await adminHeaders(app);

  const user = await app.inject({ method: 'POST', url: '/api/ops/users', headers, payload: { username: 'audited', password: 'audited-pass-1', role: 'reviewer' } });
  const rule = await app.inject({ method: 'POST', url: '/api/ops/keyword-rules', headers, payload: { name: 'audit', matchType: 'exact', pattern: 'audit', reply: text('a') } });
  const patch = await app.inject({ method: 'PATCH', url: `/api/ops/keyword-rules/${rule.json().id}`, headers, payload: { priority: 7 } });
  const welcome = await app.inject({ method: 'PUT', url: '/api/ops/replies/welcome', headers, payload: { reply: text('hi') } });
  const key = await app.inject({ method: 'PUT', url: '/api/ops/menu-keys/AUDIT_KEY', headers, payload: { action: { type: 'reply', reply: text('k') } } });

  t.test('audit › writes are listed newest first with actor, action and target', async (t) => {
    t.same([user.statusCode, rule.statusCode, patch.statusCode, welcome.statusCode, key.statusCode], [201, 201, 200, 200, 200]);
    const res = await app.inject({ method: 'GET', url: '/api/ops/audit?limit=5', headers });
    t.equal(res.statusCode, 200);
    const rows = res.json() as Array<{ id: number; actorName: string; action: string; targetType: string; targetId: string | null; detail: any; at: string; requestId: string | null }>;
    t.equal(rows.length, 5);
    t.same(rows.map((r) => [r.action, r.targetType, r.targetId]), [
      ['menu_key.set', 'menu_key', 'AUDIT_KEY'],
      ['reply_setting.set', 'reply_setting', 'welcome'],
      ['keyword_rule.update', 'keyword_rule', String(rule.json().id)],
      ['keyword_rule.create', 'keyword_rule', String(rule.json().id)],
      ['ops_user.create', 'ops_user', String(user.json().id)],
    ]);
    for (const r of rows) {
      t.equal(r.actorName, 'admin');
      t.ok(r.requestId, 'request id recorded');
    }
    t.same(rows.map((r) => r.id), [...rows.map((r) => r.id)].sort((a, b) => b - a), 'newest first');
    t.same(rows[2]!.detail, { priority: 7 });
  });

  t.test('audit › the password of a created user is redacted in detail', async (t) => {
    const rows = (await app.inject({ method: 'GET', url: '/api/ops/audit?targetType=ops_user', headers })).json() as Array<{ detail: any }>;
    t.equal(rows.length, 1);
    t.same(rows[0]!.detail, { username: 'audited', password: '***', role: 'reviewer' });
    t.notOk(JSON.stringify(rows).includes('audited-pass-1'));
    const raw = await database.query<{ detail: unknown }>((await import('drizzle-orm')).sql`SELECT detail FROM audit_log`);
    t.notOk(JSON.stringify(raw).includes('audited-pass-1'), 'not in the database either');
  });

  t.test('audit › reads and rejected writes create no audit rows', async (t) => {
    const before = await count(database, 'audit_log');
    for (const url of ['/api/ops/me', '/api/ops/users', '/api/ops/keyword-rules', '/api/ops/replies', '/api/ops/menu-keys', '/api/ops/menus', '/api/ops/audit']) {
      t.equal((await app.inject({ method: 'GET', url, headers })).statusCode, 200, url);
    }
    t.equal((await app.inject({ method: 'POST', url: '/api/ops/keyword-rules', headers, payload: { name: 'bad', matchType: 'regex', pattern: '(', reply: text('x') } })).statusCode, 422);
    t.equal((await app.inject({ method: 'POST', url: '/api/ops/users', headers, payload: { username: 'audited', password: 'audited-pass-1', role: 'reviewer' } })).statusCode, 409);
    t.equal((await app.inject({ method: 'DELETE', url: '/api/ops/keyword-rules/99999', headers })).statusCode, 404);
    t.equal(await count(database, 'audit_log'), before);
  });

  t.test('audit › an analyst may read the audit log, an operator may not', async (t) => {
    await app.inject({ method: 'POST', url: '/api/ops/users', headers, payload: { username: 'auditor', password: 'auditor-pass-1', role: 'analyst' } });
    await app.inject({ method: 'POST', url: '/api/ops/users', headers, payload: { username: 'oper', password: 'oper-pass-123', role: 'operator' } });
    t.equal((await app.inject({ method: 'GET', url: '/api/ops/audit', headers: await login(app, 'auditor', 'auditor-pass-1') })).statusCode, 200);
    t.equal((await app.inject({ method: 'GET', url: '/api/ops/audit', headers: await login(app, 'oper', 'oper-pass-123') })).statusCode, 403);
  });
});

t.test('OpenAPI › /docs/json documents the ops API', async (t) => {
  const { app } = await buildTestApp(t);
  const res = await app.inject({ method: 'GET', url: '/docs/json' });
  t.equal(res.statusCode, 200);
  const doc = res.json();
  t.match(doc.openapi, /^3\./);
  t.ok(doc.paths['/api/ops/login'], 'login documented');
  t.ok(doc.paths['/api/ops/login'].post, 'as POST');
  t.ok(doc.paths['/api/ops/keyword-rules'], 'keyword rules documented');
  t.ok(doc.paths['/api/ops/keyword-rules'].get && doc.paths['/api/ops/keyword-rules'].post);
  t.notOk(doc.paths['/healthz'], 'hidden routes stay hidden');
});
