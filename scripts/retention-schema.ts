/** Publishes the retention policy schema as retention-policies/schema.json (checked by a test). */
import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { policyFileSchema } from '../src/retention/policy.js';

export function retentionSchemaJson(): string {
  return `${JSON.stringify(z.toJSONSchema(policyFileSchema, { io: 'input' }), null, 2)}\n`;
}
if (process.argv[1]?.endsWith('retention-schema.ts')) {
  writeFileSync(new URL('../retention-policies/schema.json', import.meta.url), retentionSchemaJson());
  console.log('retention-policies/schema.json written');
}
