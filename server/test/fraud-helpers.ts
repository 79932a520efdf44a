/** Chat helpers shared by the fraud tests that drive new accounts through the signed webhook. */
import type { WeChatSimulator } from '../src/wechat/sandbox/simulator.ts';

/** What a chat reply says about the prize: 'held', 'blocked', 'paid', or the reply itself. */
export const chatOutcome = (content: string | undefined) =>
  /审核中/.test(content ?? '') ? 'held' : /暂时无法参与兑奖/.test(content ?? '') ? 'blocked' : /恭喜您抽中/.test(content ?? '') ? 'paid' : content ?? '';

/**
 * A new account's first code, its name and occupation (option 2) typed at a human pace (8 s, then 6 s, on the
 * test's clock): the outcome of the draw that follows.
 */
export function newcomerOf(sim: WeChatSimulator, clock: { advance(ms: number): unknown }, nextCode: () => string) {
  return async (openid: string, name: string) => {
    await sim.text(openid, nextCode());
    clock.advance(8_000);
    await sim.text(openid, name);
    clock.advance(6_000);
    return chatOutcome((await sim.text(openid, '2')).content);
  };
}
