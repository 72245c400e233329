/**
 * Generates dashboards/schema/dashboard.schema.json from the SDK's TypeScript
 * types (dashboards/schema/types.ts), offline, with ts-json-schema-generator.
 * Run it again after upgrading @grafana/grafana-foundation-sdk
 * (`npm run dashboards:schema`); the test fails while the committed schema
 * differs from what the installed SDK gives.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGenerator } from 'ts-json-schema-generator';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SCHEMA_FILE = path.join(here, 'schema/dashboard.schema.json');

/** The schema, serialized as it is committed. */
export function generateDashboardSchema(): string {
  const schema = createGenerator({
    path: path.join(here, 'schema/types.ts'),
    tsconfig: path.join(here, 'tsconfig.json'),
    type: 'VigieDashboard',
    expose: 'export',
    topRef: true,
    jsDoc: 'basic',
    additionalProperties: false,
    skipTypeCheck: true,
  }).createSchema('VigieDashboard');
  schema.$id = 'https://vigie.invalid/schemas/grafana-dashboard.schema.json';
  return `${JSON.stringify(schema, null, 2)}\n`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(SCHEMA_FILE, generateDashboardSchema());
  console.log(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}`);
}
