/**
 * Page tests of the mini program under tap: a jsdom global for miniprogram-simulate (j-component), a `Page` global that
 * captures a page's real definition when its real `index.ts` is imported, the page rendered from its real `.wxml` as a
 * component, and a test `wx` whose `request` goes over real HTTP (fetch) to a running server and records every call.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { JSDOM } from 'jsdom';

export const MP_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const g = globalThis as any;

/* ---- jsdom + miniprogram-simulate ---- */
let simulate: any;
function sim(): any {
  if (simulate) return simulate;
  const dom = new JSDOM('<!doctype html><html><head></head><body></body></html>', { pretendToBeVisual: true });
  g.window = dom.window;
  g.document = dom.window.document;
  // Node has its own Event and CustomEvent: j-component dispatches on jsdom nodes, which need jsdom's.
  for (const k of ['Node', 'Element', 'HTMLElement', 'Event', 'CustomEvent', 'MouseEvent', 'TouchEvent', 'getComputedStyle', 'requestAnimationFrame']) {
    g[k] = (dom.window as any)[k];
  }
  simulate = require('miniprogram-simulate');
  return simulate;
}

/* ---- the test wx ---- */
export interface WxCall {
  method: string;
  path: string;
  body: unknown;
  status: number;
  response: any;
}

export interface TestWxOptions {
  /** A wx.login code (e.g. minted by the WeChat sandbox for a chosen identity). */
  login: () => Promise<string>;
  /** What the WeChat client does with a wx.requestPayment object (e.g. pay it at the pay sandbox); true = paid. */
  pay?: (params: Record<string, unknown>) => Promise<boolean>;
  /** What the member does in wx.requestMerchantTransfer (e.g. confirm the bill at the pay sandbox); true = confirmed. */
  merchantTransfer?: (params: Record<string, unknown>) => Promise<boolean>;
}

export function installWx(opts: TestWxOptions) {
  const calls: WxCall[] = [];
  const storage = new Map<string, unknown>();
  const navigations: string[] = [];
  const toasts: string[] = [];
  const modals: Array<{ title?: string; content?: string }> = [];
  const payments: any[] = [];
  const transfers: any[] = [];
  /** What the next wx.scanCode returns (undefined: the member cancels). */
  const scans: string[] = [];
  /** The next phone-number codes, and whether the next modal is confirmed. */
  const state = {
    modalConfirm: true, clipboard: '', paymentFails: false,
    /** What wx.chooseAddress returns (null: the member closes the address picker). */
    address: null as null | Record<string, string>,
  };
  let inflight = 0;
  const track = <T>(p: Promise<T>) => {
    inflight++;
    return p.finally(() => {
      inflight--;
    });
  };

  const wx: any = {
    request(o: any) {
      void track((async () => {
        const url = new URL(o.url);
        const method = (o.method ?? 'GET').toUpperCase();
        let body: string | undefined;
        if (o.data !== undefined && (method === 'GET' || method === 'DELETE')) {
          for (const [k, v] of Object.entries(o.data)) url.searchParams.set(k, String(v));
        } else if (o.data !== undefined) {
          body = typeof o.data === 'string' ? o.data : JSON.stringify(o.data);
        }
        try {
          const res = await fetch(url, { method, headers: o.header ?? {}, body });
          let data: unknown;
          if (o.responseType === 'arraybuffer') {
            data = await res.arrayBuffer();
          } else {
            const text = await res.text();
            data = text;
            try {
              data = JSON.parse(text);
            } catch {
              // not JSON: wx hands over the string
            }
          }
          calls.push({ method, path: url.pathname + url.search, body: body ? JSON.parse(body) : undefined, status: res.status, response: data });
          const header: Record<string, string> = {};
          res.headers.forEach((v, k) => (header[k] = v));
          o.success?.({ statusCode: res.status, data, header, errMsg: 'request:ok' });
        } catch (err) {
          o.fail?.({ errMsg: `request:fail ${(err as Error).message}` });
        }
        o.complete?.({});
      })());
      return { abort() {} };
    },
    login(o: any) {
      void track(opts.login().then((code) => o.success?.({ code, errMsg: 'login:ok' }), () => o.fail?.({ errMsg: 'login:fail' })));
    },
    scanCode(o: any) {
      const result = scans.shift();
      setTimeout(() => (result === undefined ? o.fail?.({ errMsg: 'scanCode:fail cancel' }) : o.success?.({ result, scanType: 'QR_CODE', charSet: 'utf-8', path: '', rawData: '', errMsg: 'scanCode:ok' })), 0);
    },
    getStorageSync: (k: string) => (storage.has(k) ? structuredClone(storage.get(k)) : ''),
    setStorageSync: (k: string, v: unknown) => void storage.set(k, structuredClone(v)),
    removeStorageSync: (k: string) => void storage.delete(k),
    navigateTo: (o: any) => { navigations.push(o.url); o.success?.({}); },
    redirectTo: (o: any) => { navigations.push(o.url); o.success?.({}); },
    switchTab: (o: any) => { navigations.push(o.url); o.success?.({}); },
    reLaunch: (o: any) => { navigations.push(o.url); o.success?.({}); },
    showToast: (o: any) => { toasts.push(o.title); },
    showLoading: () => undefined,
    hideLoading: () => undefined,
    stopPullDownRefresh: () => undefined,
    showModal: (o: any) => {
      modals.push({ title: o.title, content: o.content });
      setTimeout(() => o.success?.({ confirm: state.modalConfirm, cancel: !state.modalConfirm }), 0);
    },
    setClipboardData: (o: any) => { state.clipboard = o.data; o.success?.({}); },
    canIUse: () => true,
    chooseAddress: (o: any) => {
      setTimeout(() => (state.address ? o.success?.({ ...state.address, errMsg: 'chooseAddress:ok' }) : o.fail?.({ errMsg: 'chooseAddress:fail cancel' })), 0);
    },
    requestPayment: (o: any) => {
      const { success, fail, complete, ...params } = o;
      payments.push(params);
      void track((async () => {
        const ok = !state.paymentFails && (opts.pay ? await opts.pay(params) : true);
        if (ok) success?.({ errMsg: 'requestPayment:ok' });
        else fail?.({ errMsg: 'requestPayment:fail cancel' });
        complete?.({});
      })());
    },
    requestMerchantTransfer: (o: any) => {
      const { success, fail, complete, ...params } = o;
      transfers.push(params);
      void track((async () => {
        const ok = opts.merchantTransfer ? await opts.merchantTransfer(params) : true;
        if (ok) success?.({ errMsg: 'requestMerchantTransfer:ok' });
        else fail?.({ errMsg: 'requestMerchantTransfer:fail cancel' });
        complete?.({});
      })());
    },
    previewImage: () => undefined,
  };
  g.wx = wx;
  g.getApp = () => ({ globalData: { memberId: null } });

  /** Until every wx call and what the page did with its answers has settled. */
  async function idle(): Promise<void> {
    for (let i = 0; i < 2000; i++) {
      await new Promise((r) => setTimeout(r, 5));
      if (inflight === 0) {
        await new Promise((r) => setTimeout(r, 5));
        if (inflight === 0) return;
      }
    }
    throw new Error('wx calls never settled');
  }

  return { wx, calls, storage, navigations, toasts, modals, payments, transfers, scans, state, idle };
}
export type TestWx = ReturnType<typeof installWx>;

/* ---- pages ---- */
const definitions = new Map<string, Record<string, any>>();

/** Import the page's real index.ts with a `Page` global that captures its definition (once per page per process). */
async function definitionOf(page: string): Promise<Record<string, any>> {
  const known = definitions.get(page);
  if (known) return known;
  let captured: Record<string, any> | undefined;
  g.Page = (def: Record<string, any>) => {
    captured = def;
  };
  await import(pathToFileURL(path.join(MP_ROOT, `${page}.ts`)).href);
  if (!captured) throw new Error(`${page}.ts did not call Page()`);
  definitions.set(page, captured);
  return captured;
}

export interface RenderedPage {
  /** The page's `this` (data, methods). */
  page: any;
  /** Everything the member reads, whitespace collapsed. */
  text(): string;
  /** Nodes by the page's own selectors (#id, .class). */
  $(selector: string): any;
  $$(selector: string): any[];
  has(selector: string): boolean;
  tap(selector: string): Promise<void>;
  input(selector: string, value: string): Promise<void>;
  change(selector: string, value: unknown): Promise<void>;
  columnChange(selector: string, column: number, value: number): Promise<void>;
}

/**
 * Render `pages/<page>` from its real WXML with its real logic: the Page definition becomes a component (data →
 * data, functions → methods, other fields → instance fields), then onLoad(query) and onShow() run as in the app.
 */
export async function renderPage(page: string, wx: TestWx, query: Record<string, string> = {}): Promise<RenderedPage> {
  const s = sim();
  const def = await definitionOf(page);
  const template = readFileSync(path.join(MP_ROOT, `${page}.wxml`), 'utf8');
  const methods: Record<string, unknown> = {};
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(def)) {
    if (k === 'data') continue;
    if (typeof v === 'function') methods[k] = v;
    else fields[k] = v;
  }
  const id = s.load({
    template,
    data: structuredClone(def['data'] ?? {}),
    methods,
    lifetimes: {
      created(this: any) {
        for (const [k, v] of Object.entries(fields)) this[k] = structuredClone(v);
      },
    },
  });
  const comp = s.render(id);
  comp.attach(g.document.createElement('parent-wrapper'));
  const inst = comp.instance;
  inst.route = page;
  inst.options = query;
  inst.onLoad?.(query);
  inst.onShow?.();
  await wx.idle();

  const node = (selector: string) => {
    const n = comp.querySelector(selector);
    if (!n) throw new Error(`no ${selector} on ${page}: ${comp.dom.textContent}`);
    return n;
  };
  const fire = async (selector: string, event: string, detail: unknown) => {
    node(selector).dispatchEvent(event, { detail });
    await wx.idle();
  };
  return {
    page: inst,
    text: () => (comp.dom.textContent as string).replace(/\s+/g, ' ').trim(),
    $: node,
    $$: (selector) => comp.querySelectorAll(selector),
    has: (selector) => !!comp.querySelector(selector),
    tap: (selector) => fire(selector, 'tap', {}),
    input: (selector, value) => fire(selector, 'input', { value }),
    change: (selector, value) => fire(selector, 'change', { value }),
    columnChange: (selector, column, value) => fire(selector, 'columnchange', { column, value }),
  };
}
