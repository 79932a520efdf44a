/** DTOs of the ops API shared by the server and any console. */
import { Type, type Static } from 'typebox';

export const ErrorResponseSchema = Type.Object({ code: Type.String(), message: Type.String(), details: Type.Optional(Type.Unknown()) }, { $id: 'ErrorResponse' });

export const RoleSchema = Type.Union([Type.Literal('admin'), Type.Literal('operator'), Type.Literal('reviewer'), Type.Literal('analyst')]);

export const LoginBodySchema = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 64 }),
  password: Type.String({ minLength: 1, maxLength: 256 }),
}, { additionalProperties: false });

export const OpsUserSchema = Type.Object({
  id: Type.Integer(), username: Type.String(), role: RoleSchema, disabled: Type.Boolean(), createdAt: Type.String(),
});

export const LoginResponseSchema = Type.Object({ token: Type.String(), expiresAt: Type.String(), user: OpsUserSchema });

export const CreateUserBodySchema = Type.Object({
  username: Type.String({ minLength: 3, maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$' }),
  password: Type.String({ minLength: 8, maxLength: 256 }),
  role: RoleSchema,
}, { additionalProperties: false });

export const UpdateUserBodySchema = Type.Object({
  role: Type.Optional(RoleSchema),
  disabled: Type.Optional(Type.Boolean()),
  password: Type.Optional(Type.String({ minLength: 8, maxLength: 256 })),
}, { additionalProperties: false, minProperties: 1 });

export type LoginBody = Static<typeof LoginBodySchema>;
export type OpsUser = Static<typeof OpsUserSchema>;
