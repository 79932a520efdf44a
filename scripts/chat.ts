/**
 * npm run chat: talk to the webhook from a terminal exactly as WeChat would (signed, optionally encrypted XML),
 * print the passive reply, then watch the sandbox for customer-service messages sent to this user.
 * Works interactively and with piped stdin (one message per line, in order; exits at EOF).
 */
import 'dotenv/config';
import { createHash } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { createInterface, clearLine, cursorTo } from 'node:readline';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../server/src/config.ts';
import { WeChatSimulator, httpTransport, type PassiveReply } from '../server/src/wechat/sandbox/simulator.ts';

const USAGE = `用法: npm run chat -- [选项]

选项:
  --url URL        服务器地址 (默认 http://127.0.0.1:$PORT)
  --sandbox URL    沙箱地址 (默认 <url>/sandbox)
  --openid ID      用户 openid (默认按本机生成的固定 id)
  --encrypt        安全模式 (AES 加密)
  --compatible     兼容模式 (明文与密文并存，隐含 --encrypt)
  --token T        覆盖 Token
  --appid ID       覆盖 AppID
  --aes-key KEY    覆盖 EncodingAESKey
  --help           显示本帮助`;

const COMMANDS = `命令:
  直接输入文字            发送文本消息 (以 // 开头可发送以 / 开头的文字)
  /menu KEY               点击菜单 (CLICK 事件)
  /subscribe [SCENE]      关注 (可带二维码场景值)
  /unsubscribe            取消关注
  /scan SCENE             已关注用户扫码 (SCAN 事件)
  /scancode KEY RESULT    扫码推事件且弹出消息接收中 (scancode_waitmsg)
  /image                  发送图片
  /voice TEXT             发送语音 (带语音识别结果)
  /location LAT LNG LABEL 发送位置
  /openid ID              切换用户
  /help                   显示命令
  /quit                   退出`;

const CS_SEND = '/cgi-bin/message/custom/send';
const POLL_MS = 1_500;
const POLL_EVERY_MS = 250;
const CS_ERRORS: Record<number, string> = { 45015: '超出 48 小时客服窗口或用户已取消关注', 45047: '客服消息条数超出上限' };

class Unreachable extends Error {}

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

function readConfig() {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
}

const config = readConfig();

function parseOptions() {
  try {
    return parseArgs({
      options: {
        url: { type: 'string' },
        sandbox: { type: 'string' },
        openid: { type: 'string' },
        encrypt: { type: 'boolean', default: false },
        compatible: { type: 'boolean', default: false },
        token: { type: 'string' },
        appid: { type: 'string' },
        'aes-key': { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (err) {
    return fail(`${(err as Error).message}\n\n${USAGE}`);
  }
}

const args = parseOptions();
if (args.help) {
  console.log(`${USAGE}\n\n${COMMANDS}`);
  process.exit(0);
}

const url = (args.url ?? `http://127.0.0.1:${config.port}`).replace(/\/+$/, '');
const sandboxUrl = (args.sandbox ?? `${url}/sandbox`).replace(/\/+$/, '');
const encrypt = args.encrypt || args.compatible;
const encodingAesKey = args['aes-key'] ?? config.wechat.encodingAesKey;
if (encrypt && !encodingAesKey) fail('安全模式需要 EncodingAESKey (--aes-key 或 WECHAT_ENCODING_AES_KEY)');

/** A stable per-machine openid: 28 characters like real ones. */
function defaultOpenid(): string {
  let user = 'user';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (some containers): keep the fallback.
  }
  return 'oSandbox' + createHash('sha256').update(`${hostname()}:${user}`).digest('hex').slice(0, 20);
}

let openid = args.openid ?? defaultOpenid();
const sim = new WeChatSimulator({
  transport: httpTransport(url),
  token: args.token ?? config.wechat.token,
  appId: args.appid ?? config.wechat.appId,
  encodingAesKey,
  sandboxUrl,
  encrypt,
  compatible: args.compatible,
});

// ---- Output ----

/** Terminal columns of a string (CJK counts double). */
const width = (s: string) => [...s].reduce((n, ch) => n + (ch.codePointAt(0)! >= 0x2e80 ? 2 : 1), 0);

/** Print lines under a prefix, continuation lines aligned with the first. */
function say(prefix: string, lines: string[]) {
  const pad = ' '.repeat(width(prefix.slice(prefix.lastIndexOf('\n') + 1)));
  const all = lines.flatMap((l) => l.split('\n'));
  console.log(all.map((l, i) => (i === 0 ? prefix : pad) + l).join('\n'));
}

function describeReply(r: PassiveReply): string[] {
  if (r.status !== 200) return [`HTTP ${r.status} ${r.raw.slice(0, 500)}`];
  if (r.xml === null) return ['(无被动回复)'];
  switch (r.msgType) {
    case 'text': return [r.content ?? ''];
    case 'news': return (r.articles ?? []).map((a) => `[图文] ${a.title}${a.url ? ` — ${a.url}` : ''}`);
    case 'image': return [`[图片] media_id=${r.mediaId}`];
    case 'voice': return [`[语音] media_id=${r.mediaId}`];
    case 'video': return [`[视频] media_id=${r.mediaId}`];
    case 'music': return [`[音乐] ${r.fields.Title ?? ''} ${r.fields.MusicUrl ?? ''}`.trim()];
    case 'transfer_customer_service': return ['[转人工客服]'];
    default: return [r.xml];
  }
}

function describeCustom(body: any): string[] {
  const b = body ?? {};
  switch (b.msgtype) {
    case 'text': return [String(b.text?.content ?? '')];
    case 'news': return (b.news?.articles ?? []).map((a: any) => `[图文] ${a.title}${a.url ? ` — ${a.url}` : ''}`);
    case 'image': return [`[图片] media_id=${b.image?.media_id}`];
    case 'voice': return [`[语音] media_id=${b.voice?.media_id}`];
    case 'video': return [`[视频] media_id=${b.video?.media_id}`];
    case 'mpnews': return [`[图文消息] media_id=${b.mpnews?.media_id}`];
    case 'music': return [`[音乐] ${b.music?.title ?? ''} ${b.music?.musicurl ?? ''}`.trim()];
    case 'miniprogrampage': return [`[小程序] ${b.miniprogrampage?.title} (${b.miniprogrampage?.appid} ${b.miniprogrampage?.pagepath})`];
    case 'msgmenu': return [String(b.msgmenu?.head_content ?? ''), ...(b.msgmenu?.list ?? []).map((m: any) => `  [${m.id}] ${m.content}`)];
    default: return [JSON.stringify(b)];
  }
}

// ---- Customer-service messages, as recorded by the sandbox ----

interface Call { seq: number; body: unknown; errcode: number }

let lastSeq = 0;
let sandboxOk = true;

async function fetchCalls(who: string, after: number): Promise<Call[]> {
  const q = new URLSearchParams({ path: CS_SEND, touser: who, after: String(after) });
  let res: Response;
  try {
    res = await fetch(`${sandboxUrl}/__sandbox/calls?${q}`);
  } catch (err) {
    throw new Unreachable(sandboxUrl, { cause: err });
  }
  if (!res.ok) throw new Error(`sandbox answered HTTP ${res.status}`);
  return (await res.json()) as Call[];
}

/** Skip what this user was sent before now. */
async function baseline(who: string) {
  if (!sandboxOk) return;
  try {
    for (const c of await fetchCalls(who, lastSeq)) lastSeq = Math.max(lastSeq, c.seq);
  } catch (err) {
    sandboxOk = false;
    console.log(`(沙箱不可用，不显示客服消息: ${err instanceof Unreachable ? `cannot reach ${sandboxUrl}` : (err as Error).message})`);
  }
}

/** Print customer-service messages newer than the last one seen; returns how many. */
async function pollOnce(print: (prefix: string, lines: string[]) => void = say): Promise<number> {
  if (!sandboxOk) return 0;
  let calls: Call[];
  try {
    calls = await fetchCalls(openid, lastSeq);
  } catch (err) {
    if (err instanceof Unreachable) throw err;
    sandboxOk = false;
    console.log(`(沙箱不可用，不再显示客服消息: ${(err as Error).message})`);
    return 0;
  }
  for (const c of calls) {
    lastSeq = Math.max(lastSeq, c.seq);
    const lines = describeCustom(c.body);
    if (c.errcode === 0) print('客服消息 › ', lines);
    else print(`客服消息被平台拒绝 errcode=${c.errcode}${CS_ERRORS[c.errcode] ? `（${CS_ERRORS[c.errcode]}）` : ''}\n  └ `, lines);
  }
  return calls.length;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pollAfterSend() {
  const until = Date.now() + POLL_MS;
  for (;;) {
    await pollOnce();
    if (Date.now() >= until) return;
    await sleep(POLL_EVERY_MS);
  }
}

// ---- Commands ----

type Result = 'continue' | 'quit';

async function handle(line: string): Promise<Result> {
  const text = line.trim();
  if (text === '') return 'continue';
  if (!text.startsWith('/') || text.startsWith('//')) {
    return send(() => sim.text(openid, text.startsWith('//') ? text.slice(1) : text));
  }
  const [cmd = '', ...rest] = text.split(/\s+/);
  const arg = rest.join(' ');
  const need = (n: number, usage: string) => {
    if (rest.length >= n) return true;
    console.log(`用法: ${usage}`);
    return false;
  };
  switch (cmd) {
    case '/help': console.log(COMMANDS); return 'continue';
    case '/quit': case '/exit': return 'quit';
    case '/menu': return need(1, '/menu KEY') ? send(() => sim.click(openid, rest[0]!)) : 'continue';
    case '/subscribe': return send(() => sim.subscribe(openid, rest[0]));
    case '/unsubscribe': return send(() => sim.unsubscribe(openid));
    case '/scan': return need(1, '/scan SCENE') ? send(() => sim.scan(openid, rest[0]!)) : 'continue';
    case '/scancode': return need(2, '/scancode KEY RESULT') ? send(() => sim.scancode(openid, rest[0]!, rest.slice(1).join(' '))) : 'continue';
    case '/image': return send(() => sim.image(openid));
    case '/voice': return need(1, '/voice TEXT') ? send(() => sim.voice(openid, arg)) : 'continue';
    case '/location':
      return need(3, '/location LAT LNG LABEL') ? send(() => sim.location(openid, rest[0]!, rest[1]!, rest.slice(2).join(' '))) : 'continue';
    case '/openid':
      if (!need(1, '/openid ID')) return 'continue';
      openid = rest[0]!;
      await baseline(openid);
      console.log(`已切换到 ${openid}`);
      return 'continue';
    default:
      console.log(`未知命令 ${cmd}，输入 /help 查看命令`);
      return 'continue';
  }
}

async function send(action: () => Promise<PassiveReply>): Promise<Result> {
  let reply: PassiveReply;
  try {
    reply = await action();
  } catch (err) {
    if (isNetworkError(err)) throw new Unreachable(url, { cause: err });
    console.log(`错误: ${(err as Error).message}`);
    return 'continue';
  }
  say('公众号 › ', describeReply(reply));
  await pollAfterSend();
  return 'continue';
}

function isNetworkError(err: unknown): boolean {
  return err instanceof TypeError && /fetch failed/i.test(err.message);
}

// ---- Main ----

async function main() {
  try {
    await fetch(`${url}/healthz`);
  } catch {
    fail(`cannot reach ${url}: is the server running? (npm start)`);
  }
  const mode = args.compatible ? '兼容模式' : encrypt ? '安全模式' : '明文模式';
  console.log(`微信模拟聊天 · ${mode} · openid ${openid} · ${url}/wechat · 输入 /help 查看命令`);
  await baseline(openid);

  const interactive = process.stdin.isTTY === true;
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: interactive, prompt: '你 › ' });
  // Ctrl+C ends the session like /quit.
  rl.on('SIGINT', () => {
    process.stdout.write('\n');
    rl.close();
  });
  let busy = false;

  // Interactive only: messages that arrive later (e.g. from the outbox) are printed above the prompt.
  const idle = interactive
    ? setInterval(() => {
        if (busy) return;
        busy = true;
        pollOnce((prefix, lines) => {
          cursorTo(process.stdout, 0);
          clearLine(process.stdout, 0);
          say(prefix, lines);
          rl.prompt(true);
        }).catch(() => {}).finally(() => (busy = false));
      }, 2_000)
    : undefined;

  try {
    if (interactive) rl.prompt();
    for await (const line of rl) {
      if (!interactive && line.trim() !== '') console.log(`你 › ${line.trim()}`);
      while (busy) await sleep(20);
      busy = true;
      let result: Result;
      try {
        result = await handle(line);
      } finally {
        busy = false;
      }
      if (result === 'quit') break;
      if (interactive) rl.prompt();
    }
  } catch (err) {
    if (err instanceof Unreachable) fail(`cannot reach ${err.message}: is the server running? (npm start)`);
    throw err;
  } finally {
    if (idle) clearInterval(idle);
    rl.close();
  }
}

await main();
