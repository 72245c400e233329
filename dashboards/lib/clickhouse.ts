/**
 * The grafana-clickhouse-datasource query model, as a custom query type of
 * @grafana/grafana-foundation-sdk (the SDK ships no ClickHouse query type).
 *
 * Every query a dashboard runs is made here, through a `QueryCatalog`, so each
 * one is recorded with the columns its panel needs. The test runs every
 * recorded query on a real ClickHouse engine and checks those columns.
 */
import type { Builder, Dataquery } from '@grafana/grafana-foundation-sdk/cog';
import type { DataSourceRef } from '@grafana/grafana-foundation-sdk/common';

/** Provisioned by deploy/grafana/provisioning/datasources/clickhouse.yaml with this uid. */
export const CLICKHOUSE_DS_UID = 'vigie-clickhouse';
export const CLICKHOUSE_DS_TYPE = 'grafana-clickhouse-datasource';
export const CLICKHOUSE_DS: { type: typeof CLICKHOUSE_DS_TYPE; uid: string } & DataSourceRef = {
  type: CLICKHOUSE_DS_TYPE,
  uid: CLICKHOUSE_DS_UID,
};

/**
 * The database the collector's clickhouse exporter writes OpenTelemetry
 * metrics to (deploy/otel-collector/config.yaml). Vigie's own tables are read
 * unqualified, from the datasource's default database (CLICKHOUSE_DATABASE).
 */
export const OTEL_DB = 'otel';

/** The plugin's `format`: how the result frame is shaped. */
export enum Format {
  TimeSeries = 0,
  Table = 1,
  Logs = 2,
}

export type QueryType = 'timeseries' | 'table' | 'logs';

const QUERY_TYPE: Record<Format, QueryType> = {
  [Format.TimeSeries]: 'timeseries',
  [Format.Table]: 'table',
  [Format.Logs]: 'logs',
};

/** grafana-clickhouse-datasource's query model (SQL editor). */
export interface ClickHouseQuery {
  /** refId and hide are expected on all queries. */
  refId?: string;
  hide?: boolean;
  datasource: { type: typeof CLICKHOUSE_DS_TYPE; uid: string };
  editorType: 'sql';
  rawSql: string;
  format: Format;
  queryType: QueryType;
  /** Lets cog know this is a Dataquery variant. */
  _implementsDataqueryVariant(): void;
}

export class ClickHouseQueryBuilder implements Builder<Dataquery> {
  private readonly internal: ClickHouseQuery;

  constructor(rawSql: string, format: Format) {
    this.internal = {
      datasource: { ...CLICKHOUSE_DS },
      editorType: 'sql',
      rawSql,
      format,
      queryType: QUERY_TYPE[format],
      _implementsDataqueryVariant() {},
    };
  }

  build(): ClickHouseQuery {
    return this.internal;
  }

  refId(refId: string): this {
    this.internal.refId = refId;
    return this;
  }

  hide(hide: boolean): this {
    this.internal.hide = hide;
    return this;
  }
}

/** Where a query sits in a dashboard, and what its result must hold. */
export interface QueryExpectation {
  dashboard: string;
  /** `panel`: a panel target; `variable`: a template variable's query; `annotation`: an annotation query. */
  kind: 'panel' | 'variable' | 'annotation';
  /** Panel title, variable name or annotation name. */
  name: string;
  refId: string;
  format: Format;
  /** Columns the panel reads, by name. A time-series query's first is `time`. */
  columns: string[];
}

/** Collects each dashboard's queries and what they must return. */
export class QueryCatalog {
  readonly expectations: QueryExpectation[] = [];

  constructor(readonly dashboard: string) {}

  /** A panel target. */
  panel(panel: string, sql: string, format: Format, columns: string[], refId = 'A'): ClickHouseQueryBuilder {
    if (format === Format.TimeSeries && columns[0] !== 'time')
      throw new Error(`${this.dashboard}/${panel}: a time series query's first column must be "time"`);
    this.expectations.push({ dashboard: this.dashboard, kind: 'panel', name: panel, refId, format, columns });
    return new ClickHouseQueryBuilder(dedent(sql), format).refId(refId);
  }

  /** A template variable's query: first column the value, second (optional) the label. */
  variable(
    name: string,
    sql: string,
    columns: string[],
  ): { refId: string; queryType: 'sql'; editorType: 'sql'; rawSql: string } {
    this.expectations.push({
      dashboard: this.dashboard,
      kind: 'variable',
      name,
      refId: name,
      format: Format.Table,
      columns,
    });
    return { refId: name, queryType: 'sql', editorType: 'sql', rawSql: dedent(sql) };
  }

  /** An annotation query: `time` required, then `text`, `title`, `tags`. */
  annotation(name: string, sql: string, columns: string[]): ClickHouseQueryBuilder {
    this.expectations.push({
      dashboard: this.dashboard,
      kind: 'annotation',
      name,
      refId: 'Anno',
      format: Format.Table,
      columns,
    });
    return new ClickHouseQueryBuilder(dedent(sql), Format.Table).refId('Anno');
  }
}

/** Removes the common indentation of a template literal, so the JSON reads well in Grafana's editor. */
export function dedent(text: string): string {
  const lines = text.replace(/^\n/, '').replace(/\s+$/, '').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.match(/^ */)![0].length));
  return lines.map((l) => l.slice(indent)).join('\n');
}
