/**
 * The shape every generated dashboard must have: the SDK's own Dashboard type,
 * with its open-ended parts (`targets`, panel `options` and `fieldConfig.custom`,
 * variable queries, annotation targets) narrowed to what Vigie uses: the
 * grafana-clickhouse-datasource query model, and each panel type's own options
 * from the SDK.
 *
 * dashboards/generate-schema.ts turns `VigieDashboard` into
 * dashboard.schema.json (ts-json-schema-generator); the test validates every
 * dashboard JSON against it with ajv.
 */
import type * as barchart from '@grafana/grafana-foundation-sdk/barchart';
import type { AnnotationQuery, Dashboard, FieldConfig, FieldConfigSource, Panel, RowPanel, VariableModel } from '@grafana/grafana-foundation-sdk/dashboard';
import type * as piechart from '@grafana/grafana-foundation-sdk/piechart';
import type * as stat from '@grafana/grafana-foundation-sdk/stat';
import type * as table from '@grafana/grafana-foundation-sdk/table';
import type * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import type { ClickHouseQuery } from '../lib/clickhouse.js';

/** A ClickHouse target as stored in JSON (the SDK's marker method is not data). */
export type ClickHouseTarget = Omit<ClickHouseQuery, '_implementsDataqueryVariant' | 'refId'> & { refId: string };

/** A template variable's query (the plugin's CHVariableQuery, SQL kind). */
export interface ClickHouseVariableQuery {
  refId: string;
  queryType: 'sql';
  editorType: 'sql';
  rawSql: string;
}

// Local names: the SDK's panel modules all call theirs `Options` and `FieldConfig`,
// and JSON Schema definitions need unique names (Pick keeps every property).
type Renamed<T> = Pick<T, keyof T>;
export type TimeseriesOptions = Renamed<timeseries.Options>;
export type TimeseriesFieldConfig = Renamed<timeseries.FieldConfig>;
export type StatOptions = Renamed<stat.Options>;
export type TableOptions = Renamed<table.Options>;
export type TableFieldConfig = Renamed<table.FieldConfig>;
export type BarchartOptions = Renamed<barchart.Options>;
export type BarchartFieldConfig = Renamed<barchart.FieldConfig>;
export type PiechartOptions = Renamed<piechart.Options>;
export type PiechartFieldConfig = Renamed<piechart.FieldConfig>;
/** The dashboard's FieldConfig, minus its open-ended `custom`. */
export type PanelFieldDefaults = Omit<FieldConfig, 'custom'>;

type PanelOf<Type extends string, Options, Custom> = Omit<Panel, 'type' | 'targets' | 'options' | 'fieldConfig' | 'datasource'> & {
  type: Type;
  datasource: ClickHouseTarget['datasource'];
  targets: ClickHouseTarget[];
  options?: Options;
  fieldConfig?: Omit<FieldConfigSource, 'defaults'> & { defaults: PanelFieldDefaults & { custom?: Custom } };
};

export type VigiePanel =
  | PanelOf<'timeseries', TimeseriesOptions, TimeseriesFieldConfig>
  | PanelOf<'stat', StatOptions, never>
  | PanelOf<'table', TableOptions, TableFieldConfig>
  | PanelOf<'barchart', BarchartOptions, BarchartFieldConfig>
  | PanelOf<'piechart', PiechartOptions, PiechartFieldConfig>;

export type VigieRow = Omit<RowPanel, 'panels'> & { panels: VigiePanel[] };

export type VigieVariable = Omit<VariableModel, 'query' | 'datasource'> & {
  datasource: ClickHouseTarget['datasource'];
  query: ClickHouseVariableQuery;
};

export type VigieAnnotation = Omit<AnnotationQuery, 'target' | 'datasource'> & {
  datasource: ClickHouseTarget['datasource'];
  target: ClickHouseTarget;
};

export interface VigieDashboard extends Omit<Dashboard, 'panels' | 'templating' | 'annotations' | 'uid' | 'title'> {
  uid: string;
  title: string;
  panels: Array<VigiePanel | VigieRow>;
  templating: { list?: VigieVariable[] };
  annotations: { list?: VigieAnnotation[] };
}
