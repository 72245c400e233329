import { z } from 'zod';
import { VigieError } from '../errors.js';

/** JSON Schema for the OpenAPI document, from the same zod schema that validates. */
export function openapi(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...json } = z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return json;
}

export function parse<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value ?? {});
  if (!r.success) throw new VigieError('INVALID_REQUEST', r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  return r.data;
}

export const errorBody = {
  type: 'object',
  properties: { error: { type: 'object', properties: { code: { type: 'string', enum: ['INVALID_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND', 'RATE_LIMITED', 'INTERNAL'] }, message: { type: 'string' } } } },
};
