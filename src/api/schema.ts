import { z } from 'zod';
import { ERROR_CODES } from '../errors.js';

/** JSON Schema for the OpenAPI document, from the same zod schema that validates. */
export function openapi(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...json } = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  return json;
}

export { parseOrInvalid as parse } from '../errors.js';

/**
 * Response schemas, for the OpenAPI document and the server SDK's types only: replies are serialized with
 * JSON.stringify (apiPlugin sets the serializer), so a schema never strips or reshapes what a handler sends.
 */
const errorBody = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string', enum: [...ERROR_CODES] }, message: { type: 'string' } },
    },
  },
} as const;

/** `{ error: { code, message } }`, the answer of every refused or failed call. */
export const errorResponses = { '4xx': errorBody, '5xx': errorBody } as const;
