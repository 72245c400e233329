/**
 * Small wrappers over the SDK's panel builders, so each dashboard file reads
 * as a list of panels: title, SQL, the columns it returns, and its looks.
 */
import * as barchart from '@grafana/grafana-foundation-sdk/barchart';
import {
  DashboardBuilder,
  DashboardCursorSync,
  DashboardLinkBuilder,
  DashboardLinkType,
  QueryVariableBuilder,
  ThresholdsConfigBuilder,
  ThresholdsMode,
  VariableRefresh,
  VariableSort,
  type Dashboard,
  type Panel,
  type RowPanel,
} from '@grafana/grafana-foundation-sdk/dashboard';
import {
  BigValueColorMode,
  BigValueGraphMode,
  GraphDrawStyle,
  LegendDisplayMode,
  LegendPlacement,
  ReduceDataOptionsBuilder,
  StackingConfigBuilder,
  StackingMode,
  TableSortByFieldStateBuilder,
  VizLegendOptionsBuilder,
  VizOrientation,
} from '@grafana/grafana-foundation-sdk/common';
import * as piechart from '@grafana/grafana-foundation-sdk/piechart';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import { CLICKHOUSE_DS, Format, type QueryCatalog } from './clickhouse.js';

interface Common {
  title: string;
  description?: string;
  sql: string;
  columns: string[];
  unit?: string;
  w: number;
  h: number;
}

/** The setters every panel builder of the SDK has, whatever its visualization. */
interface AnyPanelBuilder {
  title(title: string): this;
  datasource(datasource: typeof CLICKHOUSE_DS): this;
  withTarget(target: cog.Builder<cog.Dataquery>): this;
  span(w: number): this;
  height(h: number): this;
  description(description: string): this;
  unit(unit: string): this;
}

/** Title, query and size: what a panel sets before its own looks. */
function placed<P extends AnyPanelBuilder>(p: P, cat: QueryCatalog, o: Common, format: Format): P {
  return p
    .title(o.title)
    .datasource(CLICKHOUSE_DS)
    .withTarget(cat.panel(o.title, o.sql, format, o.columns))
    .span(o.w)
    .height(o.h);
}

/** Description and unit, when given: what a panel sets after its own looks. */
function described<P extends AnyPanelBuilder>(p: P, o: Common): P {
  if (o.description) p.description(o.description);
  if (o.unit) p.unit(o.unit);
  return p;
}

export function timeSeriesPanel(
  cat: QueryCatalog,
  o: Common & { bars?: boolean; stack?: boolean; min?: number; max?: number; decimals?: number },
): timeseries.PanelBuilder {
  const p = placed(new timeseries.PanelBuilder(), cat, o, Format.TimeSeries)
    .lineWidth(1)
    .fillOpacity(o.bars || o.stack ? 80 : 10)
    .spanNulls(true)
    .legend(
      new VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(LegendDisplayMode.List)
        .placement(LegendPlacement.Bottom)
        .calcs([]),
    );
  described(p, o);
  if (o.min !== undefined) p.min(o.min);
  if (o.max !== undefined) p.max(o.max);
  if (o.decimals !== undefined) p.decimals(o.decimals);
  if (o.bars) p.drawStyle(GraphDrawStyle.Bars);
  if (o.stack) p.stacking(new StackingConfigBuilder().mode(StackingMode.Normal));
  return p;
}

export function statPanel(
  cat: QueryCatalog,
  o: Common & {
    decimals?: number;
    thresholds?: Array<{ value: number | null; color: string }>;
    units?: Record<string, string>;
  },
): stat.PanelBuilder {
  const p = placed(new stat.PanelBuilder(), cat, o, Format.Table)
    .graphMode(BigValueGraphMode.None)
    .colorMode(o.thresholds ? BigValueColorMode.Background : BigValueColorMode.Value)
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).fields('').values(false));
  described(p, o);
  if (o.decimals !== undefined) p.decimals(o.decimals);
  if (o.thresholds) p.thresholds(new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps(o.thresholds));
  for (const [field, unit] of Object.entries(o.units ?? {})) p.overrideByName(field, [{ id: 'unit', value: unit }]);
  return p;
}

export function tablePanel(
  cat: QueryCatalog,
  o: Common & {
    links?: Array<{ field: string; title: string; url: string }>;
    units?: Record<string, string>;
    sortBy?: { displayName: string; desc?: boolean };
  },
): table.PanelBuilder {
  const p = placed(new table.PanelBuilder(), cat, o, Format.Table).showHeader(true).frameIndex(0);
  described(p, o);
  for (const [field, unit] of Object.entries(o.units ?? {})) p.overrideByName(field, [{ id: 'unit', value: unit }]);
  for (const l of o.links ?? [])
    p.overrideByName(l.field, [{ id: 'links', value: [{ title: l.title, url: l.url, targetBlank: false }] }]);
  if (o.sortBy)
    p.sortBy([new TableSortByFieldStateBuilder().displayName(o.sortBy.displayName).desc(o.sortBy.desc ?? false)]);
  return p;
}

export function barChartPanel(cat: QueryCatalog, o: Common & { xField: string }): barchart.PanelBuilder {
  const p = placed(new barchart.PanelBuilder(), cat, o, Format.Table)
    .xField(o.xField)
    .orientation(VizOrientation.Vertical)
    .fillOpacity(80)
    .legend(
      new VizLegendOptionsBuilder()
        .showLegend(false)
        .displayMode(LegendDisplayMode.List)
        .placement(LegendPlacement.Bottom)
        .calcs([]),
    );
  return described(p, o);
}

export function pieChartPanel(cat: QueryCatalog, o: Common): piechart.PanelBuilder {
  const p = placed(new piechart.PanelBuilder(), cat, o, Format.Table)
    .pieType(piechart.PieChartType.Donut)
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).fields('').values(true))
    .legend(
      new piechart.PieChartLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(LegendDisplayMode.List)
        .placement(LegendPlacement.Right)
        .values([piechart.PieChartLegendValues.Percent])
        .calcs([]),
    );
  return described(p, o);
}

/** A query variable whose options come from ClickHouse. */
export function queryVariable(
  cat: QueryCatalog,
  o: {
    name: string;
    label: string;
    sql: string;
    columns: string[];
    multi?: boolean;
    includeAll?: boolean;
    description?: string;
  },
): QueryVariableBuilder {
  const q = cat.variable(o.name, o.sql, o.columns);
  const v = new QueryVariableBuilder(o.name)
    .label(o.label)
    .datasource(CLICKHOUSE_DS)
    .query(q)
    .definition(q.rawSql)
    .refresh(VariableRefresh.OnTimeRangeChanged)
    .sort(VariableSort.Disabled)
    .multi(o.multi ?? false)
    .includeAll(o.includeAll ?? false);
  if (o.description) v.description(o.description);
  return v;
}

/** The filter of dashboards whose tenant variable may select several tenants. */
export const TENANTS = 'tenant IN (${tenant:sqlstring})';

/** A multi-select "Tenant" variable; `sql` lists the tenants that have data. */
export function tenantVariable(cat: QueryCatalog, sql: string): QueryVariableBuilder {
  return queryVariable(cat, {
    name: 'tenant',
    label: 'Tenant',
    multi: true,
    includeAll: true,
    sql,
    columns: ['tenant'],
  });
}

/** Dashboard defaults shared by every Vigie dashboard. */
export function vigieDashboard(uid: string, title: string, description: string): DashboardBuilder {
  return new DashboardBuilder(title)
    .uid(uid)
    .description(description)
    .tags(['vigie'])
    .editable()
    .tooltip(DashboardCursorSync.Crosshair)
    .timezone('browser')
    .time({ from: 'now-6h', to: 'now' })
    .refresh('1m')
    .link(
      new DashboardLinkBuilder('Vigie dashboards')
        .type(DashboardLinkType.Dashboards)
        .tags(['vigie'])
        .asDropdown(true)
        .keepTime(true)
        .includeVars(false)
        .targetBlank(false),
    );
}

/**
 * Numbers the panels 1..n in layout order (Grafana needs ids unique in a
 * dashboard; the SDK leaves them unset) and drops the SDK's builder-only keys.
 */
export function finish(builder: DashboardBuilder): Dashboard {
  const d = builder.build();
  let id = 0;
  for (const p of (d.panels ?? []) as Array<Panel | RowPanel>) {
    p.id = ++id;
    if (p.type === 'row') for (const inner of (p as RowPanel).panels) inner.id = ++id;
  }
  return JSON.parse(JSON.stringify(d)) as Dashboard;
}
