/**
 * Every Vigie dashboard, with the queries each one runs and what they return.
 * `npm run dashboards` writes them to dashboards/json/, which Grafana loads.
 */
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import type { QueryExpectation } from '../lib/clickhouse.js';
import { callDrilldown } from './call-drilldown.js';
import { qualityOverview } from './quality-overview.js';
import { recordingCompliance } from './recording-compliance.js';
import { sfuInfrastructure } from './sfu-infrastructure.js';

export interface BuiltDashboard {
  /** File name under dashboards/json/. */
  file: string;
  dashboard: Dashboard;
  expectations: QueryExpectation[];
}

export function buildDashboards(): BuiltDashboard[] {
  return [
    ['call-quality-overview.json', qualityOverview()],
    ['call-drilldown.json', callDrilldown()],
    ['sfu-infrastructure.json', sfuInfrastructure()],
    ['recording-compliance.json', recordingCompliance()],
  ].map(([file, built]) => {
    const b = built as ReturnType<typeof qualityOverview>;
    return { file: file as string, dashboard: b.dashboard, expectations: b.catalog.expectations };
  });
}

/** The committed form: two-space JSON and a final newline. */
export function serialize(d: Dashboard): string {
  return `${JSON.stringify(d, null, 2)}\n`;
}
