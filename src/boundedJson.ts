import { z } from 'zod';

/**
 * Free-form JSON (token metadata, loose signaling objects) is checked for
 * shape, not only for type: a body under the size limit can still nest tens of
 * thousands of levels deep, and every recursive consumer after validation
 * (JSON.stringify when a token is signed, structuredClone in mediasoup) then
 * overflows the stack and the client gets a 500 for its own malformed input.
 */
export interface JsonLimits {
  /** Containers (objects, arrays) nested in one another, the outermost included. */
  maxDepth: number;
  /** Values of every kind, counted over the whole tree. */
  maxNodes: number;
  /** Longest string, key or value, in UTF-16 code units. */
  maxStringLength: number;
  /** Largest UTF-8 size of the value serialized as JSON. */
  maxBytes: number;
}

/**
 * Token metadata: small enough that a minted token stays under the 8192
 * characters TokenService accepts (base64url adds a third).
 */
export const METADATA_LIMITS: JsonLimits = { maxDepth: 8, maxNodes: 256, maxStringLength: 1024, maxBytes: 4096 };

/** Why `value` is not JSON within `limits`, or undefined when it is. */
export function jsonProblem(value: unknown, limits: JsonLimits): string | undefined {
  // Iterative on purpose: the check must not overflow on the input it exists to refuse.
  const pending: Array<{ v: unknown; depth: number }> = [{ v: value, depth: 0 }];
  let nodes = 0;
  while (pending.length > 0) {
    const { v, depth } = pending.pop()!;
    if (++nodes > limits.maxNodes) return `more than ${limits.maxNodes} values`;
    if (v === null || typeof v === 'boolean') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return 'numbers must be finite';
      continue;
    }
    if (typeof v === 'string') {
      if (v.length > limits.maxStringLength) return `a string is longer than ${limits.maxStringLength} characters`;
      continue;
    }
    if (typeof v !== 'object' || !(Array.isArray(v) || isPlainObject(v))) return `not JSON (${typeof v})`;
    if (depth + 1 > limits.maxDepth) return `nested deeper than ${limits.maxDepth} levels`;
    if (Array.isArray(v)) {
      for (const item of v) pending.push({ v: item, depth: depth + 1 });
      continue;
    }
    for (const [key, item] of Object.entries(v)) {
      if (key.length > limits.maxStringLength) return `a key is longer than ${limits.maxStringLength} characters`;
      pending.push({ v: item, depth: depth + 1 });
    }
  }
  // Safe now that depth and node count are bounded.
  const bytes = Buffer.byteLength(JSON.stringify(value) ?? '');
  if (bytes > limits.maxBytes) return `larger than ${limits.maxBytes} bytes as JSON (${bytes})`;
  return undefined;
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

const describe = (l: JsonLimits) =>
  `free-form JSON: at most ${l.maxDepth} levels deep, ${l.maxNodes} values, strings of ${l.maxStringLength} ` +
  `characters and ${l.maxBytes} bytes in all`;

/** A zod refinement: the value is JSON within `limits` (for schemas that also type their values). */
export function withinLimits(limits: JsonLimits) {
  return (v: unknown, ctx: z.RefinementCtx) => {
    const problem = jsonProblem(v, limits);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  };
}

/** Any JSON value within `limits`. */
export function boundedJson(limits: JsonLimits) {
  return z
    .unknown()
    .superRefine(withinLimits(limits))
    .meta({ description: describe(limits) });
}

/** A JSON object (string keys, any JSON values) within `limits`. */
export function boundedJsonObject(limits: JsonLimits) {
  return z
    .record(z.string(), z.unknown())
    .superRefine(withinLimits(limits))
    .meta({ description: describe(limits) });
}
