/**
 * DTOs of commerce: the points mall and its orders (incl. the wx.requestPayment parameters), store-bound coupons,
 * stores and their staff, and recommendations. TypeBox → JSON Schema (ajv on the server, types in the mini program).
 */
import { Type, type Static } from 'typebox';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(s: T) => Type.Union([s, Type.Null()]);

// ---------------------------------------------------------------------------------------------------------------
// Mall

export const MallItemKindSchema = Type.Union([Type.Literal('coupon'), Type.Literal('physical'), Type.Literal('sample'), Type.Literal('points_cash')]);
export const OrderStateSchema = Type.Union([
  Type.Literal('awaiting_payment'), Type.Literal('paid'), Type.Literal('shipped'), Type.Literal('fulfilled'),
  Type.Literal('cancelled'), Type.Literal('refund_pending'), Type.Literal('refunded'),
]);
export type OrderStateName = Static<typeof OrderStateSchema>;

export const MallCouponSpecSchema = Type.Object({
  title: Type.String({ minLength: 1, maxLength: 64 }),
  valueFen: Type.Integer({ minimum: 0, maximum: 10_000_000 }),
  validDays: Type.Integer({ minimum: 1, maximum: 3660 }),
  storeIds: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 500 })),
}, { additionalProperties: false });

/** An item as the mini program lists it. */
export const MpMallItemSchema = Type.Object({
  id: Type.Integer(),
  kind: MallItemKindSchema,
  title: Type.String(),
  description: Type.String(),
  imageUrl: Nullable(Type.String()),
  points: Type.Integer(),
  cashFen: Type.Integer(),
  stock: Type.Integer(),
  perMemberLimit: Nullable(Type.Integer()),
  /** null = no limit */
  remainingForMe: Nullable(Type.Integer()),
  minTier: Nullable(Type.String()),
  /** false when the member's tier is below minTier. */
  tierOk: Type.Boolean(),
  needsAddress: Type.Boolean(),
});
export type MpMallItem = Static<typeof MpMallItemSchema>;

export const ShippingAddressSchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 40 }),
  phone: Type.String({ pattern: '^1[3-9]\\d{9}$' }),
  province: Type.String({ minLength: 1, maxLength: 20 }),
  city: Type.String({ minLength: 1, maxLength: 20 }),
  district: Type.Optional(Type.String({ maxLength: 20 })),
  detail: Type.String({ minLength: 1, maxLength: 200 }),
}, { additionalProperties: false });
export type ShippingAddressDto = Static<typeof ShippingAddressSchema>;

export const PlaceOrderBodySchema = Type.Object({
  itemId: Type.Integer({ minimum: 1 }),
  quantity: Type.Integer({ minimum: 1, maximum: 10, default: 1 }),
  /** Generated once per order form (e.g. a UUID): re-sending the same key returns the same order. */
  clientKey: Type.String({ minLength: 8, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }),
  address: Type.Optional(ShippingAddressSchema),
}, { additionalProperties: false });
export type PlaceOrderBody = Static<typeof PlaceOrderBodySchema>;

/** Pass as is to wx.requestPayment. */
export const RequestPaymentSchema = Type.Object({
  timeStamp: Type.String(),
  nonceStr: Type.String(),
  package: Type.String(),
  signType: Type.Literal('RSA'),
  paySign: Type.String(),
});
export type RequestPaymentDto = Static<typeof RequestPaymentSchema>;

export const MpOrderSchema = Type.Object({
  id: Type.Integer(),
  itemId: Type.Integer(),
  kind: MallItemKindSchema,
  title: Type.String(),
  quantity: Type.Integer(),
  points: Type.Integer(),
  cashFen: Type.Integer(),
  state: OrderStateSchema,
  payExpiresAt: Nullable(Type.String()),
  paidAt: Nullable(Type.String()),
  couponId: Nullable(Type.Integer()),
  shipping: Nullable(Type.Object({ carrier: Type.String(), trackingNo: Type.String() })),
  createdAt: Type.String(),
});
export type MpOrder = Static<typeof MpOrderSchema>;

export const PlaceOrderResponseSchema = Type.Object({
  order: MpOrderSchema,
  /** Present while a points + cash order waits for payment. */
  payment: Nullable(RequestPaymentSchema),
  /** true when this clientKey had already placed the order. */
  duplicate: Type.Boolean(),
});
export type PlaceOrderResponse = Static<typeof PlaceOrderResponseSchema>;

/** Ops: create an item. */
export const MallItemBodySchema = Type.Object({
  kind: MallItemKindSchema,
  title: Type.String({ minLength: 1, maxLength: 64 }),
  description: Type.Optional(Type.String({ maxLength: 2000 })),
  imageUrl: Type.Optional(Nullable(Type.String({ maxLength: 500 }))),
  points: Type.Integer({ minimum: 0, maximum: 10_000_000 }),
  cashFen: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
  stock: Type.Integer({ minimum: 0, maximum: 100_000_000 }),
  perMemberLimit: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 10_000 }))),
  minTier: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 32 }))),
  coupon: Type.Optional(Nullable(MallCouponSpecSchema)),
  status: Type.Optional(Type.Union([Type.Literal('draft'), Type.Literal('active'), Type.Literal('archived')])),
  position: Type.Optional(Type.Integer({ minimum: -1000, maximum: 100_000 })),
}, { additionalProperties: false });
export type MallItemBody = Static<typeof MallItemBodySchema>;

/** Ops: change an item; stock moves by `stockDelta` (a concurrent sale is never overwritten). */
export const MallItemPatchSchema = Type.Object({
  ...Type.Partial(Type.Omit(MallItemBodySchema, ['stock', 'kind'])).properties,
  stockDelta: Type.Optional(Type.Integer({ minimum: -100_000_000, maximum: 100_000_000 })),
}, { additionalProperties: false, minProperties: 1 });
export type MallItemPatch = Static<typeof MallItemPatchSchema>;

export const OpsMallItemSchema = Type.Object({
  id: Type.Integer(),
  kind: MallItemKindSchema,
  title: Type.String(),
  description: Type.String(),
  imageUrl: Nullable(Type.String()),
  points: Type.Integer(),
  cashFen: Type.Integer(),
  stock: Type.Integer(),
  sold: Type.Integer(),
  perMemberLimit: Nullable(Type.Integer()),
  minTier: Nullable(Type.String()),
  coupon: Nullable(Type.Object({ title: Type.String(), valueFen: Type.Integer(), validDays: Type.Integer(), storeIds: Type.Optional(Type.Array(Type.String())) })),
  status: Type.Union([Type.Literal('draft'), Type.Literal('active'), Type.Literal('archived')]),
  position: Type.Integer(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

export const OpsOrderSchema = Type.Object({
  ...MpOrderSchema.properties,
  openid: Type.String(),
  memberId: Nullable(Type.Integer()),
  outTradeNo: Nullable(Type.String()),
  transactionId: Nullable(Type.String()),
  address: Nullable(ShippingAddressSchema),
  note: Nullable(Type.String()),
  updatedAt: Type.String(),
});

export const ShipBodySchema = Type.Object({
  carrier: Type.String({ minLength: 1, maxLength: 40 }),
  trackingNo: Type.String({ minLength: 1, maxLength: 64 }),
}, { additionalProperties: false });

// ---------------------------------------------------------------------------------------------------------------
// Coupons and stores

export const CouponStatusSchema = Type.Union([Type.Literal('issued'), Type.Literal('used'), Type.Literal('expired'), Type.Literal('revoked')]);

export const MpCouponSchema = Type.Object({
  id: Type.Integer(),
  title: Type.String(),
  valueFen: Type.Integer(),
  couponCode: Type.String(),
  status: CouponStatusSchema,
  issuedAt: Type.String(),
  expiresAt: Type.String(),
  usedAt: Nullable(Type.String()),
  /** The stores it can be used in (empty: any store). */
  stores: Type.Array(Type.Object({ id: Type.String(), name: Type.String(), city: Nullable(Type.String()), address: Nullable(Type.String()) })),
});
export type MpCoupon = Static<typeof MpCouponSchema>;

/** What the mini program renders as a QR code for store staff to scan (signed; valid until expiresAt). */
export const CouponQrSchema = Type.Object({ couponId: Type.Integer(), qr: Type.String(), expiresAt: Type.String() });
export type CouponQr = Static<typeof CouponQrSchema>;

export const StoreBodySchema = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }),
  name: Type.String({ minLength: 1, maxLength: 64 }),
  city: Type.Optional(Nullable(Type.String({ maxLength: 32 }))),
  address: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
  active: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export const StorePatchSchema = Type.Partial(Type.Omit(StoreBodySchema, ['id']), { additionalProperties: false, minProperties: 1 });
export const StoreSchema = Type.Object({
  id: Type.String(), name: Type.String(), city: Nullable(Type.String()), address: Nullable(Type.String()), active: Type.Boolean(), createdAt: Type.String(),
});

export const StaffBodySchema = Type.Object({ name: Type.String({ minLength: 1, maxLength: 40 }) }, { additionalProperties: false });
export const StaffSchema = Type.Object({
  id: Type.Integer(), storeId: Type.String(), name: Type.String(), createdAt: Type.String(), revokedAt: Nullable(Type.String()), lastUsedAt: Nullable(Type.String()),
});
/** The token is shown once, at issue; only its hash is kept. */
export const StaffIssuedSchema = Type.Object({ ...StaffSchema.properties, token: Type.String() });

/** Store staff: what the till scanned (the QR text) or typed (the coupon code). */
export const StoreCouponBodySchema = Type.Union([
  Type.Object({ qr: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false }),
  Type.Object({ code: Type.String({ minLength: 6, maxLength: 32 }) }, { additionalProperties: false }),
]);
export const StoreCouponViewSchema = Type.Object({
  couponId: Type.Integer(),
  title: Type.String(),
  valueFen: Type.Integer(),
  status: CouponStatusSchema,
  expiresAt: Type.String(),
  usedAt: Nullable(Type.String()),
  /** Whether this store may redeem it now. */
  redeemable: Type.Boolean(),
  reason: Nullable(Type.String()),
});

export const StoreUsageSchema = Type.Object({
  storeId: Type.String(),
  name: Type.String(),
  city: Nullable(Type.String()),
  /** Coupons bound to the store (store_ids names it). */
  issued: Type.Integer(),
  redeemed: Type.Integer(),
  /** Refused attempts at this store (already used, expired, wrong store, bad QR …). */
  refused: Type.Integer(),
});

// ---------------------------------------------------------------------------------------------------------------
// Recommendations

export const RecConditionSchema = Type.Object({
  /** `profile.<questionKey>[.<field>]`, `tag`, `city` or `tier`. */
  field: Type.String({ pattern: '^(profile\\.[a-z][a-z0-9_]{0,31}(\\.[a-zA-Z_]{1,32})?|tag|city|tier)$' }),
  op: Type.Union([Type.Literal('eq'), Type.Literal('in'), Type.Literal('between'), Type.Literal('gte'), Type.Literal('lte'), Type.Literal('has'), Type.Literal('contains')]),
  value: Type.Optional(Type.Unknown()),
}, { additionalProperties: false });

export const RecRuleBodySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 64 }),
  priority: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000 })),
  conditions: Type.Array(RecConditionSchema, { maxItems: 10 }),
  itemKeys: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 20 }),
  reason: Type.String({ minLength: 1, maxLength: 64 }),
  active: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export const RecRulePatchSchema = Type.Partial(RecRuleBodySchema, { additionalProperties: false, minProperties: 1 });
export const RecRuleSchema = Type.Object({
  id: Type.Integer(), name: Type.String(), priority: Type.Integer(), conditions: Type.Array(RecConditionSchema), itemKeys: Type.Array(Type.String()),
  reason: Type.String(), active: Type.Boolean(), updatedAt: Type.String(),
});

export const RecItemBodySchema = Type.Object({
  key: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9-]*$' }),
  kind: Type.Union([Type.Literal('product'), Type.Literal('event')]),
  title: Type.String({ minLength: 1, maxLength: 64 }),
  description: Type.Optional(Type.String({ maxLength: 500 })),
  imageUrl: Type.Optional(Nullable(Type.String({ maxLength: 500 }))),
  link: Type.Optional(Nullable(Type.String({ maxLength: 500 }))),
  city: Type.Optional(Nullable(Type.String({ maxLength: 32 }))),
  startsAt: Type.Optional(Nullable(Type.String({ format: 'date-time' }))),
  endsAt: Type.Optional(Nullable(Type.String({ format: 'date-time' }))),
  active: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export const RecItemPatchSchema = Type.Partial(Type.Omit(RecItemBodySchema, ['key']), { additionalProperties: false, minProperties: 1 });
export const RecItemSchema = Type.Object({
  id: Type.Integer(), key: Type.String(), kind: Type.Union([Type.Literal('product'), Type.Literal('event')]), title: Type.String(), description: Type.String(),
  imageUrl: Nullable(Type.String()), link: Nullable(Type.String()), city: Nullable(Type.String()), startsAt: Nullable(Type.String()), endsAt: Nullable(Type.String()),
  active: Type.Boolean(),
});

/** One card on the mini program's home page. */
export const MpRecommendationSchema = Type.Object({
  itemId: Type.Integer(),
  key: Type.String(),
  kind: Type.Union([Type.Literal('product'), Type.Literal('event')]),
  title: Type.String(),
  description: Type.String(),
  imageUrl: Nullable(Type.String()),
  link: Nullable(Type.String()),
  city: Nullable(Type.String()),
  /** The rule that chose it, or null for the popular fallback. */
  ruleId: Nullable(Type.Integer()),
  reason: Type.String(),
});
export type MpRecommendation = Static<typeof MpRecommendationSchema>;

export const RecClickBodySchema = Type.Object({
  itemId: Type.Integer({ minimum: 1 }),
  ruleId: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
}, { additionalProperties: false });

export const RecStatsSchema = Type.Object({
  itemId: Type.Integer(), key: Type.String(), title: Type.String(), impressions: Type.Integer(), clicks: Type.Integer(),
});
