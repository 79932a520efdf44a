/**
 * XML in and out for WeChat pushes. Parsing goes through xml2js (strict sax) with every leaf kept as
 * a string (MsgId exceeds 2^53), every element as an array (repeated `List`/`item` stay arrays),
 * no trimming (location_select's Label has a meaningful leading space) and no DTDs at all. Flat documents (the usual
 * push) are read by parseFlatXml to the same result without xml2js.
 */
import xml2js from 'xml2js';

export class XmlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XmlError';
  }
}

/** xml2js's shape with explicitArray: each element name maps to an array of strings or nodes. */
export type XmlNode = { [name: string]: Array<string | XmlNode> | undefined };

const parserOptions: xml2js.ParserOptions = {
  explicitArray: true,
  explicitRoot: true,
  trim: false,
  normalize: false,
  normalizeTags: false,
  explicitCharkey: false,
  strict: true,
  async: false,
};

// WeChat never sends a DTD; refusing them outright rules out XXE and entity expansion.
const DTD = /<!DOCTYPE|<!ENTITY/i;

/**
 * Characters XML 1.0 does not allow anywhere in a document (§2.2 Char): C0 controls but tab, LF and CR; lone
 * surrogates (the `u` flag matches a surrogate pair as one code point, outside this class); U+FFFE and U+FFFF.
 * sax (under xml2js) lets them through, and PostgreSQL refuses U+0000 and lone surrogates in jsonb and text: one such
 * message would fail the batched claim statement of every message it rides with. Refused in both parsing paths.
 */
const NOT_XML_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uD800-\uDFFF\uFFFE\uFFFF]/u;

function refuseNonXmlChars(body: string) {
  const m = NOT_XML_CHAR.exec(body);
  if (m) throw new XmlError(`character U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')} is not allowed in XML (at ${m.index})`);
}

/**
 * What almost every push is: `<xml>`, then flat elements, each holding one CDATA section or plain text, then `</xml>`.
 * Such a document is read here without the generic parser (a text message: 1.5 µs instead of 24 µs through xml2js,
 * which was ~14 % of the server's CPU profile in npm run bench:redeem), giving exactly what xml2js gives (differential
 * test: server/test/xml-fast-path.test.ts).
 * Plain text is limited to characters that need no XML processing (no markup, entity or `]`/`>`), element names
 * to ASCII identifiers; anything else — nesting, attributes, comments, a declaration, several CDATA sections, an
 * entity — returns undefined and goes through xml2js. A character XML does not allow throws XmlError (as xml2js's path).
 */
const FLAT_ELEMENT = /[ \t\r\n]*<([A-Za-z_][A-Za-z0-9_]{0,63})>(?:<!\[CDATA\[((?:[^\]]|\](?!\]>))*)\]\]>|([^<>&\]]*))<\/\1>/y;
const FLAT_END = /[ \t\r\n]*<\/xml>[ \t\r\n]*$/y;
const FLAT_START = /^[ \t\r\n]*<xml>/y;

export function parseFlatXml(body: string): XmlNode | undefined {
  FLAT_START.lastIndex = 0;
  if (!FLAT_START.test(body)) return undefined;
  refuseNonXmlChars(body);
  let at = FLAT_START.lastIndex;
  const node: XmlNode = {};
  for (;;) {
    FLAT_END.lastIndex = at;
    // `<xml></xml>` is xml2js's empty string, which parseWechatXml refuses: leave it to that path.
    if (FLAT_END.test(body)) return Object.keys(node).length > 0 ? node : undefined;
    FLAT_ELEMENT.lastIndex = at;
    const m = FLAT_ELEMENT.exec(body);
    if (!m) return undefined;
    const name = m[1]!;
    // xml2js treats names that objects inherit (`__proto__`, `constructor`, …) as already present: its result for
    // them is its own, so they take its path.
    if (name in Object.prototype) return undefined;
    const value = m[2] ?? m[3] ?? '';
    const list = Object.prototype.hasOwnProperty.call(node, name) ? node[name] : undefined;
    if (list) list.push(value);
    else node[name] = [value];
    at = FLAT_ELEMENT.lastIndex;
  }
}

/** Parse a WeChat XML document with root `<xml>`. Throws XmlError on anything malformed. */
export function parseWechatXml(body: string): XmlNode {
  if (DTD.test(body)) throw new XmlError('DTD and entity declarations are not allowed');
  return parseFlatXml(body) ?? parseXmlGeneric(body);
}

/** The same through xml2js, for any document (parseWechatXml uses it when the flat reading does not apply). */
export function parseXmlGeneric(body: string): XmlNode {
  if (DTD.test(body)) throw new XmlError('DTD and entity declarations are not allowed');
  refuseNonXmlChars(body);
  let result: unknown;
  let failure: unknown;
  let done = false;
  // xml2js's parser is synchronous with async:false but may call back twice on errors; keep the first.
  new xml2js.Parser(parserOptions).parseString(body, (err: unknown, res: unknown) => {
    if (done) return;
    done = true;
    failure = err;
    result = res;
  });
  if (failure || !done) throw new XmlError(`malformed XML: ${failure instanceof Error ? failure.message.split('\n')[0] : 'incomplete'}`);
  const root = (result as { xml?: unknown } | null)?.xml;
  if (!root || typeof root !== 'object') throw new XmlError('root element must be <xml>');
  return root as XmlNode;
}

const ENCRYPT = /<Encrypt>\s*(?:<!\[CDATA\[([A-Za-z0-9+/=\s]*)\]\]>|([A-Za-z0-9+/=\s]*))\s*<\/Encrypt>/g;

/**
 * The Encrypt value of a safe/compatible-mode envelope. Nothing else in the envelope is trusted (the
 * signature covers Encrypt only; the decrypted XML is parsed in full), so one base64 value is all we need:
 * exactly one <Encrypt> element with base64 content, inside an <xml> root, no DTD.
 */
export function extractEncrypt(body: string): string {
  if (DTD.test(body)) throw new XmlError('DTD and entity declarations are not allowed');
  if (!/^\s*(<\?xml[^>]*\?>\s*)?<xml>/.test(body) || !/<\/xml>\s*$/.test(body)) throw new XmlError('root element must be <xml>');
  const matches = [...body.matchAll(ENCRYPT)];
  if (matches.length !== 1) throw new XmlError(matches.length === 0 ? 'missing <Encrypt>' : 'more than one <Encrypt>');
  const value = (matches[0]![1] ?? matches[0]![2] ?? '').replace(/\s+/g, '');
  if (value.length === 0) throw new XmlError('empty <Encrypt>');
  return value;
}

/** First text value of a child element, or undefined. */
export function leaf(node: XmlNode | undefined, name: string): string | undefined {
  const v = node?.[name]?.[0];
  if (typeof v === 'string') return v;
  // An element with only whitespace children or attributes comes back as an object: treat as empty text.
  if (v && typeof v === 'object' && Object.keys(v).length === 0) return '';
  return undefined;
}

/** First child element (as a node), or undefined. */
export function child(node: XmlNode | undefined, name: string): XmlNode | undefined {
  const v = node?.[name]?.[0];
  return v && typeof v === 'object' ? v : undefined;
}

/** All child elements with that name (repeated elements are always arrays). */
export function children(node: XmlNode | undefined, name: string): XmlNode[] {
  return (node?.[name] ?? []).filter((v): v is XmlNode => typeof v === 'object');
}

/** CDATA that survives any content: `]]>` is split across two sections. */
export function cdata(text: string): string {
  return `<![CDATA[${text.replace(/]]>/g, ']]]]><![CDATA[>')}]]>`;
}

export type XmlValue = string | number | { cdata: string } | XmlFields | XmlFields[];
export interface XmlFields { [name: string]: XmlValue | undefined }

/** Serialise fields in order: strings as CDATA, numbers bare, arrays as repeated <item>. */
export function buildXml(fields: XmlFields, root = 'xml'): string {
  return `<${root}>${serialise(fields)}</${root}>`;
}

function serialise(fields: XmlFields): string {
  let out = '';
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    if (typeof value === 'string') out += `<${name}>${cdata(value)}</${name}>`;
    else if (typeof value === 'number') out += `<${name}>${value}</${name}>`;
    else if (Array.isArray(value)) out += `<${name}>${value.map((item) => `<item>${serialise(item)}</item>`).join('')}</${name}>`;
    else if ('cdata' in value && typeof value.cdata === 'string') out += `<${name}>${cdata(value.cdata)}</${name}>`;
    else out += `<${name}>${serialise(value as XmlFields)}</${name}>`;
  }
  return out;
}
