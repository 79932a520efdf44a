/**
 * Code batches from the command line (large print runs; the ops API caps generation at 2 million codes):
 *
 *   npm run codes -- generate --campaign <id> --count <n> --out <file.csv> [--name x] [--sku y] [--deck 3=100,4=20]
 *   npm run codes -- import   --campaign <id> --file <file.csv> [--name x] [--sku y] [--deck …]
 *   npm run codes -- export   --batch <id> --out <file.csv>
 *   npm run codes -- void     --batch <id>
 *   npm run codes -- list     --campaign <id>
 *   npm run codes -- retry    --batch <id> [--out <file.csv>]    reload a batch a crash left 'loading' (same codes)
 *   npm run codes -- discard  --batch <id>                       remove a batch a crash left 'loading'
 *
 * The database and CODE_KEY come from the same environment / .env as the server (loadConfig → openDatabase, then
 * migrations). The CSV format is documented in server/src/campaigns/batch-derive.ts (header `code,batch,seq`).
 * Output files are never overwritten (--force to allow) and are removed if the command fails.
 *
 * PGlite (no DATABASE_URL): the data directory (DATA_DIR) can only be opened by one process at a time — stop the
 * server before running this CLI against it (or use PostgreSQL, where both can run at once).
 */
import 'dotenv/config';
import { createReadStream, createWriteStream, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { loadConfig } from '../server/src/config.ts';
import { openDatabase, type Database } from '../server/src/db/client.ts';
import { systemClock } from '../server/src/platform/clock.ts';
import { createCodeBatchService, type BatchInfo, type Progress } from '../server/src/campaigns/batches.ts';

const USAGE = `usage: npm run codes -- <command> [options]
  generate --campaign <id> --count <n> --out <file.csv> [--name x] [--sku y] [--deck prizeId=units,…] [--force]
  import   --campaign <id> --file <file.csv> [--name x] [--sku y] [--deck prizeId=units,…]
  export   --batch <id> --out <file.csv> [--force]
  void     --batch <id>
  list     --campaign <id>
  retry    --batch <id> [--out <file.csv>] [--deck …] [--force]
  discard  --batch <id>
(PGlite: stop the server first — its data directory can be opened by one process only.)`;

class UsageError extends Error {}

const { values: opts, positionals } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        campaign: { type: 'string' }, batch: { type: 'string' }, count: { type: 'string' }, out: { type: 'string' }, file: { type: 'string' },
        name: { type: 'string' }, sku: { type: 'string' }, deck: { type: 'string' }, force: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    console.error(`codes: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
})();

function intArg(name: 'campaign' | 'batch' | 'count'): number {
  const raw = opts[name];
  if (raw === undefined) throw new UsageError(`--${name} is required`);
  const v = Number(raw.replace(/[_,]/g, ''));
  if (!Number.isSafeInteger(v) || v < 1) throw new UsageError(`--${name} must be a positive integer, got "${raw}"`);
  return v;
}

function deckArg(): Record<number, number> | undefined {
  if (!opts.deck) return undefined;
  const deck: Record<number, number> = {};
  for (const part of opts.deck.split(',')) {
    const m = /^\s*(\d+)\s*=\s*(\d+)\s*$/.exec(part);
    if (!m) throw new UsageError(`--deck must look like 3=100,4=20 (prize id = units), got "${part}"`);
    deck[Number(m[1])] = Number(m[2]);
  }
  return deck;
}

function outArg(required: boolean): string | undefined {
  const out = opts.out;
  if (!out) {
    if (required) throw new UsageError('--out <file.csv> is required');
    return undefined;
  }
  if (existsSync(out) && !opts.force) throw new UsageError(`${out} exists; refusing to overwrite it (--force)`);
  return path.resolve(out);
}

function progressBar(): { onProgress: Progress; stop(): void } {
  const bar = new cliProgress.SingleBar({
    format: '{phase} [{bar}] {percentage}% | {value}/{total} | {duration_formatted} elapsed, eta {eta_formatted}',
    stream: process.stderr,
    hideCursor: true,
    etaBuffer: 50,
  }, cliProgress.Presets.shades_classic);
  let phase = '';
  return {
    onProgress(done, total, p) {
      const label = { generate: 'generate', store: 'store   ', export: 'export  ' }[p];
      if (p !== phase) {
        if (phase) bar.stop();
        phase = p;
        bar.start(total, done, { phase: label });
      } else bar.update(done, { phase: label });
    },
    stop() {
      if (phase) bar.stop();
      phase = '';
    },
  };
}

const fmt = (n: number) => n.toLocaleString('en-US');
const describe = (b: BatchInfo) => `batch ${b.id} "${b.name}" (${b.source}, ${b.status}): ${fmt(b.count)} codes of campaign ${b.campaignId}${b.sku ? `, sku ${b.sku}` : ''}`;

async function main(): Promise<number> {
  const command = positionals[0];
  if (opts.help || !command) {
    console.log(USAGE);
    return command || opts.help ? 0 : 2;
  }
  if (!['generate', 'import', 'export', 'void', 'list', 'retry', 'discard'].includes(command)) throw new UsageError(`unknown command "${command}"`);

  // Validate the arguments before opening the database.
  const args = {
    generate: () => ({ campaign: intArg('campaign'), count: intArg('count'), out: outArg(true)!, deck: deckArg() }),
    import: () => {
      if (!opts.file) throw new UsageError('--file <file.csv> is required');
      if (!existsSync(opts.file)) throw new UsageError(`${opts.file} does not exist`);
      return { campaign: intArg('campaign'), file: opts.file, deck: deckArg() };
    },
    export: () => ({ batch: intArg('batch'), out: outArg(true)! }),
    void: () => ({ batch: intArg('batch') }),
    list: () => ({ campaign: intArg('campaign') }),
    retry: () => ({ batch: intArg('batch'), out: outArg(false), deck: deckArg() }),
    discard: () => ({ batch: intArg('batch') }),
  }[command as 'generate']() as Record<string, any>;

  const config = loadConfig(process.env);
  let database: Database;
  try {
    database = await openDatabase({ url: config.db.url, dataDir: config.db.dataDir, poolSize: 4 });
    await database.migrate();
  } catch (err) {
    const hint = config.db.url ? '' : ` (PGlite data dir ${config.db.dataDir}: is the server running on it?)`;
    throw new Error(`cannot open the database${hint}: ${(err as Error).message}`);
  }
  const batches = createCodeBatchService({ database, codeKey: config.codeKey, clock: systemClock });
  const by = `cli:${os.userInfo().username}`;
  const started = performance.now();
  const seconds = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
  let outFile: string | undefined;
  const bar = progressBar();
  try {
    switch (command) {
      case 'generate': {
        outFile = args.out;
        const b = await batches.generate({
          campaignId: args.campaign, count: args.count, name: opts.name, sku: opts.sku, deck: args.deck, createdBy: by,
          out: createWriteStream(args.out, { highWaterMark: 4 << 20 }), onProgress: bar.onProgress,
        });
        bar.stop();
        outFile = undefined;
        console.log(`${describe(b)} → ${args.out} (${seconds()})`);
        break;
      }
      case 'import': {
        const b = await batches.importCsv({ campaignId: args.campaign, name: opts.name ?? path.basename(args.file), sku: opts.sku, deck: args.deck, createdBy: by, input: createReadStream(args.file) });
        console.log(`imported ${describe(b)} (${seconds()})`);
        break;
      }
      case 'export': {
        outFile = args.out;
        await batches.exportCsv(args.batch, createWriteStream(args.out, { highWaterMark: 4 << 20 }), bar.onProgress);
        bar.stop();
        outFile = undefined;
        const b = await batches.get(args.batch);
        console.log(`exported ${describe(b)} → ${args.out} (${seconds()})`);
        break;
      }
      case 'void': {
        const b = await batches.voidBatch(args.batch, by);
        console.log(`voided ${describe(b)}`);
        break;
      }
      case 'list': {
        const list = await batches.list(args.campaign);
        if (list.length === 0) console.log(`campaign ${args.campaign} has no code batches`);
        for (const b of list) console.log(`${describe(b)}, created ${b.createdAt.toISOString()}${b.createdBy ? ` by ${b.createdBy}` : ''}`);
        break;
      }
      case 'retry': {
        outFile = args.out;
        const b = await batches.retry(args.batch, { deck: args.deck, out: args.out ? createWriteStream(args.out) : undefined, onProgress: bar.onProgress });
        bar.stop();
        outFile = undefined;
        console.log(`reloaded ${describe(b)}${args.out ? ` → ${args.out}` : ''} (${seconds()})`);
        break;
      }
      case 'discard': {
        await batches.discard(args.batch);
        console.log(`discarded batch ${args.batch}`);
        break;
      }
    }
    return 0;
  } finally {
    bar.stop();
    if (outFile) rmSync(outFile, { force: true });
    await database.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    const message = err.message.split('\n')[0];
    console.error(`codes: error: ${message}`);
    if (err instanceof UsageError) console.error(`run "npm run codes -- --help" for usage`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
