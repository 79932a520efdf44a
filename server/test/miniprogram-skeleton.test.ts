import t from 'tap';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PAGE_EXTENSIONS = ['.ts', '.json', '.wxml', '.wxss'] as const;

const readJson = (file: string): unknown => JSON.parse(readFileSync(file, 'utf8')) as unknown;
const isFile = (file: string): boolean => statSync(file, { throwIfNoEntry: false })?.isFile() ?? false;
const isDir = (file: string): boolean => statSync(file, { throwIfNoEntry: false })?.isDirectory() ?? false;

t.test('miniprogram › project.config.json points DevTools at miniprogram/', async (t) => {
  const config = readJson(path.join(ROOT, 'project.config.json')) as Record<string, unknown>;
  t.equal(config['miniprogramRoot'], 'miniprogram/');
  t.equal(config['compileType'], 'miniprogram');
  t.ok(isDir(path.join(ROOT, 'miniprogram')), 'miniprogram/ exists');
  for (const f of ['app.ts', 'app.json', 'app.wxss', 'sitemap.json']) {
    t.ok(isFile(path.join(ROOT, 'miniprogram', f)), `miniprogram/${f} exists`);
  }
});

t.test('miniprogram › every page in app.json has its four files and valid page JSON', async (t) => {
  const mpRoot = path.join(ROOT, 'miniprogram');
  const app = readJson(path.join(mpRoot, 'app.json')) as { pages?: unknown; sitemapLocation?: unknown };
  t.ok(Array.isArray(app.pages) && app.pages.length > 0, 'app.json lists at least one page');
  const pages = Array.isArray(app.pages) ? app.pages : [];
  if (typeof app.sitemapLocation === 'string') {
    t.ok(isFile(path.join(mpRoot, app.sitemapLocation)), 'sitemapLocation file exists');
  }
  for (const page of pages) {
    t.type(page, 'string', 'page path is a string');
    if (typeof page !== 'string') continue;
    for (const ext of PAGE_EXTENSIONS) {
      t.ok(isFile(path.join(mpRoot, page + ext)), `${page}${ext} exists`);
    }
    const pageJson = path.join(mpRoot, `${page}.json`);
    if (isFile(pageJson)) {
      t.doesNotThrow(() => readJson(pageJson), `${page}.json parses`);
    }
  }
});
