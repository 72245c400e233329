/**
 * What happens to a panel's SQL before ClickHouse sees it, so the test can run
 * exactly that:
 *
 * 1. Grafana's frontend replaces template variables (`$var`, `${var}`,
 *    `${var:format}`). Names starting with `__` are left alone.
 * 2. The plugin's backend (grafana-clickhouse-datasource pkg/macros/macros.go)
 *    expands its macros, with the dashboard's time range and the panel's
 *    interval:
 *      $__timeFilter(c)     c >= toDateTime(from_s) AND c <= toDateTime(to_s)
 *      $__timeFilter_ms(c)  c >= fromUnixTimestamp64Milli(from_ms) AND c <= fromUnixTimestamp64Milli(to_ms)
 *      $__dateFilter(c)     c >= toDate('YYYY-MM-DD') AND c <= toDate('YYYY-MM-DD')
 *      $__timeInterval(c)   toStartOfInterval(toDateTime(c), INTERVAL <interval_s> second)
 *      $__timeInterval_ms(c) toStartOfInterval(toDateTime64(c, 3), INTERVAL <interval_ms> millisecond)
 *      $__fromTime, $__toTime          toDateTime(<s>)
 *      $__fromTime_ms, $__toTime_ms    fromUnixTimestamp64Milli(<ms>)
 *      $__interval_s        the interval in whole seconds (at least 1)
 *
 * Anything else that looks like a macro or a variable is an error here, so a
 * typo in a dashboard fails the test instead of failing in Grafana.
 */

export interface ExpansionContext {
  from: Date;
  to: Date;
  /** The panel's interval (Grafana derives it from the range and the panel width). */
  intervalMs: number;
  /** Template variables: one value, or several for multi-value (and "All") selections. */
  vars: Record<string, string | string[]>;
}

const FORMATS: Record<string, (values: string[]) => string> = {
  // Grafana's `sqlstring`: each value quoted, quotes doubled, comma-separated.
  sqlstring: (v) => v.map((s) => `'${s.replace(/'/g, "''")}'`).join(','),
  singlequote: (v) => v.map((s) => `'${s.replace(/'/g, "\\'")}'`).join(','),
  doublequote: (v) => v.map((s) => `"${s.replace(/"/g, '\\"')}"`).join(','),
  csv: (v) => v.join(','),
  raw: (v) => v.join(','),
};

/** Step 1: Grafana's template variable interpolation. */
export function interpolateVariables(sql: string, vars: ExpansionContext['vars']): string {
  return sql.replace(
    /\$\{(\w+)(?::(\w+))?\}|\$(\w+)/g,
    (whole, braced: string | undefined, format: string | undefined, bare: string | undefined) => {
      const name = (braced ?? bare)!;
      if (name.startsWith('__')) return whole; // Grafana's own and the plugin's macros
      if (!(name in vars)) throw new Error(`unknown template variable $${name}`);
      const value = vars[name]!;
      const values = Array.isArray(value) ? value : [value];
      if (!format) {
        // The plugin formats a multi-value selection as a quoted list; one value goes in as it is.
        return Array.isArray(value) ? FORMATS.singlequote!(values) : values[0]!;
      }
      const f = FORMATS[format];
      if (!f) throw new Error(`unsupported variable format ${format} in ${whole}`);
      return f(values);
    },
  );
}

const toDateTime = (d: Date) => `toDateTime(${Math.floor(d.getTime() / 1000)})`;
const toDateTime64 = (d: Date) => `fromUnixTimestamp64Milli(${d.getTime()})`;
const toDate = (d: Date) => `toDate('${d.toISOString().slice(0, 10)}')`;

/** Step 2: the plugin's macros. */
export function expandMacros(sql: string, ctx: Omit<ExpansionContext, 'vars'>): string {
  const seconds = Math.max(Math.floor(ctx.intervalMs / 1000), 1);
  const millis = Math.max(Math.floor(ctx.intervalMs), 1);
  const oneArg = (name: string, args: string[] | undefined): string => {
    if (args?.length !== 1 || !args[0]) throw new Error(`$__${name} expects 1 argument`);
    return args[0];
  };
  const macros: Record<string, (args: string[] | undefined) => string> = {
    fromTime: () => toDateTime(ctx.from),
    toTime: () => toDateTime(ctx.to),
    fromTime_ms: () => toDateTime64(ctx.from),
    toTime_ms: () => toDateTime64(ctx.to),
    timeFilter: (a) => {
      const c = oneArg('timeFilter', a);
      return `${c} >= ${toDateTime(ctx.from)} AND ${c} <= ${toDateTime(ctx.to)}`;
    },
    timeFilter_ms: (a) => {
      const c = oneArg('timeFilter_ms', a);
      return `${c} >= ${toDateTime64(ctx.from)} AND ${c} <= ${toDateTime64(ctx.to)}`;
    },
    dateFilter: (a) => {
      const c = oneArg('dateFilter', a);
      return `${c} >= ${toDate(ctx.from)} AND ${c} <= ${toDate(ctx.to)}`;
    },
    timeInterval: (a) => `toStartOfInterval(toDateTime(${oneArg('timeInterval', a)}), INTERVAL ${seconds} second)`,
    timeInterval_ms: (a) =>
      `toStartOfInterval(toDateTime64(${oneArg('timeInterval_ms', a)}, 3), INTERVAL ${millis} millisecond)`,
    interval_s: () => String(seconds),
  };
  let out = '';
  let i = 0;
  const re = /\$__(\w+)/g;
  for (let m = re.exec(sql); m; m = re.exec(sql)) {
    const name = m[1]!;
    const fn = macros[name];
    if (!fn) throw new Error(`unknown macro $__${name}`);
    let end = m.index + m[0].length;
    let args: string[] | undefined;
    if (sql[end] === '(') {
      const close = sql.indexOf(')', end);
      // The plugin's macro parser does not balance parentheses: keep arguments plain.
      if (close < 0 || sql.slice(end + 1, close).includes('('))
        throw new Error(`$__${name}: arguments must not contain parentheses`);
      args = sql
        .slice(end + 1, close)
        .split(',')
        .map((s) => s.trim());
      end = close + 1;
    }
    out += sql.slice(i, m.index) + fn(args);
    i = end;
    re.lastIndex = end;
  }
  return out + sql.slice(i);
}

/** Both steps, in Grafana's order. */
export function expandQuery(sql: string, ctx: ExpansionContext): string {
  return expandMacros(interpolateVariables(sql, ctx.vars), ctx);
}
