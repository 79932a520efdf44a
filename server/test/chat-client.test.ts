/**
 * End to end: the real server (npm start, sandbox mode) as a child process, and `npm run chat` piped into it,
 * in plain and safe mode.
 */
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onPostgres, testDatabase } from './helpers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });

async function stop(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited(child);
  clearTimeout(timer);
}

/** The server on a free port with a fresh data dir (and a fresh database on PostgreSQL). */
async function startServer(tt: Test) {
  // Registered first, so it is torn down after the server is stopped.
  const databaseUrl = onPostgres ? (await testDatabase(tt)).url : undefined;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'chat-client-test-'));
  tt.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  const server = spawn(process.execPath, ['--import', 'tsx', 'server/src/main.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  server.stdout!.on('data', (d) => (log += d));
  server.stderr!.on('data', (d) => (log += d));
  tt.teardown(() => stop(server));

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 40_000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`server exited with ${server.exitCode}:\n${log}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`server not ready after 40 s:\n${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, log: () => log };
}

/** Pipe lines into `npm run chat` and collect what it prints. */
async function chat(args: string[], lines: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/chat.ts', ...args], { cwd: ROOT, env: process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d) => (stderr += d));
  child.stdin!.end(lines.join('\n') + '\n');
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await exited(child);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

t.test('npm run chat against the real server', async (t) => {
  const server = await startServer(t);
  const lines = ['/subscribe', '帮助', '/menu MEMBER_CENTER'];

  for (const mode of ['plain', 'encrypt'] as const) {
    await t.test(mode, async (t) => {
      const openid = `oChatTest${randomBytes(6).toString('hex')}`;
      const args = ['--url', server.url, '--openid', openid, ...(mode === 'encrypt' ? ['--encrypt'] : [])];
      const { code, stdout, stderr } = await chat(args, lines);
      const diag = { stdout, stderr, server: server.log() };
      t.equal(code, 0, 'exits 0 at EOF', diag);
      t.match(stdout, openid, 'banner names the user');
      t.match(stdout, mode === 'encrypt' ? '安全模式' : '明文模式', 'banner names the mode');
      t.match(stdout, '欢迎关注', 'welcome on subscribe', diag);
      t.match(stdout, '发送包装内的兑奖码', 'help keyword reply', diag);
      t.match(stdout, /公众号 › [^\n]*会员中心/, 'menu reply', diag);
      t.notMatch(stdout, /HTTP \d{3}|错误:/, 'no failed sends', diag);
    });
  }
});

t.test('npm run chat says so when the server is not running', async (t) => {
  const port = await freePort();
  const { code, stderr } = await chat(['--url', `http://127.0.0.1:${port}`], ['帮助']);
  t.equal(code, 1);
  t.match(stderr, `cannot reach http://127.0.0.1:${port}: is the server running? (npm start)`);
});
