/**
 * XML in and out for WeChat pushes. Parsing goes through xml2js (strict sax) with every leaf kept as
 * a string (MsgId exceeds 2^53), every element as an array (repeated `List`/`item` stay arrays),
 * no trimming (location_select's Label has a meaningful leading space) and no DTDs at all.
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

/** Parse a WeChat XML document with root `<xml>`. Throws XmlError on anything malformed. */
export function parseWechatXml(body: string): XmlNode {
  if (DTD.test(body)) throw new XmlError('DTD and entity declarations are not allowed');
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
