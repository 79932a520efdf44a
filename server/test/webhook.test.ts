import t from 'tap';
import { buildTestApp, count } from './helpers.ts';

t.test('webhook › a text message gets the default reply, logged once', async (t) => {
  const { sim, database } = await buildTestApp(t);
  const r = await sim.text('oUser1', '随便说点什么');
  t.equal(r.status, 200);
  t.equal(r.msgType, 'text');
  t.match(r.content, /帮助/);
  t.equal(await count(database, 'interactions'), 1);
});

t.test('webhook › WEBHOOK_REQUIRE_ENCRYPTION: a plaintext push is refused (its signature does not cover the body), an encrypted one answered', async (t) => {
  const { simulator, database } = await buildTestApp(t, { env: { WEBHOOK_REQUIRE_ENCRYPTION: 'true' } });
  const plain = await simulator(false).text('oSafe', '随便说点什么');
  t.equal(plain.status, 401, 'validly signed, but not encrypted');
  t.equal(await count(database, 'interactions'), 0, 'nothing handled');
  const safe = await simulator(true).text('oSafe', '随便说点什么');
  t.equal(safe.status, 200);
  t.match(safe.content, /帮助/);
  const compatible = await simulator(true, true).text('oSafe', '再说一句');
  t.equal(compatible.status, 200, 'compatible mode carries the encrypted body too');
  t.equal(await count(database, 'interactions'), 2);
});
