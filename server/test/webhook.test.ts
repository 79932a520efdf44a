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
