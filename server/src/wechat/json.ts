import { isSafeNumber, parse } from 'lossless-json';

/**
 * Parse WeChat API JSON without losing 64-bit ids (msgid, msg_id, msg_data_id exceed 2^53):
 * safe numbers become numbers, larger ones stay strings.
 */
export function parseJsonLossless(text: string): any {
  return parse(text, null, (value: string) => (isSafeNumber(value) ? Number(value) : value));
}
