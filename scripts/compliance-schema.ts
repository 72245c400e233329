/** Publishes the subprocessor register's schema as compliance/subprocessors.schema.json (checked by a test). */
import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { subprocessorsSchema } from '../src/compliance/subprocessors.js';

export function subprocessorsSchemaJson(): string {
  return `${JSON.stringify(z.toJSONSchema(subprocessorsSchema, { io: 'input' }), null, 2)}\n`;
}
if (process.argv[1]?.endsWith('compliance-schema.ts')) {
  writeFileSync(new URL('../compliance/subprocessors.schema.json', import.meta.url), subprocessorsSchemaJson());
  console.log('compliance/subprocessors.schema.json written');
}
