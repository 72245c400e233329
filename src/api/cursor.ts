import { z } from 'zod';

/**
 * Pagination cursors: opaque to clients (base64url of JSON), and checked
 * against `shape` when they come back, so a forged or truncated cursor is an
 * INVALID_REQUEST naming the cursor, never a NaN or a stray string sent to
 * ClickHouse.
 */
export function cursorCodec<S extends z.ZodType>(shape: S) {
  const decode = (raw: string): unknown => {
    try {
      return JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
  };
  return {
    encode: (value: z.input<S>): string => Buffer.from(JSON.stringify(value)).toString('base64url'),
    /** The query parameter: a string in, the decoded position out. */
    param: z
      .string()
      .max(512)
      .regex(/^[A-Za-z0-9_-]+$/, 'not a cursor this API issued')
      .transform((raw, ctx) => {
        const parsed = shape.safeParse(decode(raw));
        if (parsed.success) return parsed.data as z.output<S>;
        ctx.addIssue({ code: 'custom', message: 'not a cursor this API issued' });
        return z.NEVER;
      })
      .meta({ description: 'Opaque cursor from the previous page (nextCursor).' }),
  };
}
