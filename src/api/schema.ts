import { z } from 'zod';

/** JSON Schema for the OpenAPI document, from the same zod schema that validates. */
export function openapi(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...json } = z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return json;
}

export { parseOrInvalid as parse } from '../errors.js';
