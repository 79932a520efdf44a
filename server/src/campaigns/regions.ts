/**
 * Province → city cascade for the lottery's golden questions ("您所在的省份？" / "城市？").
 * Data: shared/data/regions-cn.json (31 mainland provincial-level divisions, generated from
 * the official GB/T 2260 codes; no network at run time). Types: shared/regions.ts.
 *
 * Numbering: PROVINCES and each province's `cities` are sorted by code, and a user's
 * number "N" means the N-th entry (1-based) of that order — build numbered menus from
 * the same arrays so the two always agree.
 */
import data from '../../../shared/data/regions-cn.json' with { type: 'json' };
import type { RegionCity, RegionProvince, RegionsFile } from '../../../shared/regions.ts';

export type { RegionCity, RegionProvince } from '../../../shared/regions.ts';

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

const file: RegionsFile = deepFreeze(data);

/** All 31 mainland provincial-level divisions, sorted by code (= menu numbering). */
export const PROVINCES: readonly RegionProvince[] = file.provinces;

/**
 * Cleans what a user typed: trims, drops all whitespace (incl. the full-width space
 * U+3000) and turns full-width digits ０–９ into 0–9.
 */
export function normalizeRegionInput(text: string): string {
  return text
    .replace(/\s+/g, '')
    .replace(/[\uFF10-\uFF19]/g, (d) => String.fromCharCode(d.charCodeAt(0) - 0xff10 + 0x30));
}

/** "19" → 19; anything that is not a plain 1–3 digit number → undefined. */
function menuNumber(s: string): number | undefined {
  return /^\d{1,3}$/.test(s) ? Number(s) : undefined;
}

/**
 * Suffixes a user may leave out of a second-level name. Longest first, so 地区 wins over
 * 区 ("和田地区" → "和田"); 林区/新区 cover "神农架林区" → "神农架", "浦东新区" → "浦东".
 */
const CITY_SUFFIXES = ['自治州', '地区', '林区', '新区', '市', '区', '县', '盟'] as const;

/** The name without its administrative suffix, or undefined if nothing is left. */
export function stripCitySuffix(name: string): string | undefined {
  for (const suf of CITY_SUFFIXES) {
    if (name.length > suf.length && name.endsWith(suf)) return name.slice(0, -suf.length);
  }
  return undefined;
}

/**
 * Finds a province by full name ("广东省", "广西壮族自治区"), short name ("广东", "广西"),
 * or 1-based menu number ("19", "１９"). Unknown or out of range → undefined.
 */
export function findProvince(input: string): RegionProvince | undefined {
  const s = normalizeRegionInput(input);
  if (!s) return undefined;
  const n = menuNumber(s);
  if (n !== undefined) return n >= 1 ? PROVINCES[n - 1] : undefined;
  return PROVINCES.find((p) => p.name === s || p.short === s);
}

/**
 * Finds a second-level entry of `province` (a province object, or anything findProvince
 * accepts) by full name ("深圳市"), name without its suffix ("深圳"; see CITY_SUFFIXES),
 * or 1-based menu number. As a last resort, for ethnic autonomous units only, a unique
 * prefix of at least 2 characters matches ("伊犁" → 伊犁哈萨克自治州, "恩施" → 恩施土家族苗族自治州).
 * Ambiguous or unknown → undefined.
 */
export function findCity(province: RegionProvince | string, input: string): RegionCity | undefined {
  const p = typeof province === 'string' ? findProvince(province) : province;
  if (!p) return undefined;
  const s = normalizeRegionInput(input);
  if (!s) return undefined;
  const n = menuNumber(s);
  if (n !== undefined) return n >= 1 ? p.cities[n - 1] : undefined;

  const exact = p.cities.find((c) => c.name === s);
  if (exact) return exact;
  const bare = p.cities.filter((c) => stripCitySuffix(c.name) === s);
  if (bare.length === 1) return bare[0];
  if (bare.length > 1) return undefined;
  if (s.length >= 2) {
    const pre = p.cities.filter((c) => c.name.includes('自治') && c.name.startsWith(s));
    if (pre.length === 1) return pre[0];
  }
  return undefined;
}
