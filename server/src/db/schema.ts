// Every capability's tables, for Drizzle and drizzle-kit.
export * from '../followers/tables.ts';
export * from '../bot/tables.ts';
export * from '../replies/tables.ts';
export * from '../messaging/tables.ts';
export * from '../wechat/tables.ts';
export * from '../ops/tables.ts';
export * from '../campaigns/tables.ts';
export * from '../members/tables.ts';
export * from '../fulfilment/tables.ts';
// commerce (mall, orders, coupons, recommendations)
export * from '../mall/tables.ts';
export * from '../coupons/tables.ts';
export * from '../audience/tables.ts';
export * from '../fraud/tables.ts'; // fraud
