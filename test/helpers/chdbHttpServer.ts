/**
 * A ClickHouse HTTP endpoint backed by the embedded engine (chdb), in its own
 * process: tests and benchmarks use it where production uses clickhouse-server
 * over HTTP (CLICKHOUSE_URL), which cannot be installed here. It speaks the
 * part of ClickHouse's HTTP interface that @clickhouse/client uses: /ping,
 * INSERT … FORMAT with the rows in the body and settings in the URL, and
 * queries in the body with `param_*` query parameters. Errors come back as
 * ClickHouse sends them (HTTP 500, `Code: N. DB::Exception: …`).
 *
 *   node --import tsx test/helpers/chdbHttpServer.ts <dataDir> [port]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

/** URL parameters that are not ClickHouse settings. */
const NOT_SETTINGS = new Set([
  'query',
  'query_id',
  'database',
  'default_format',
  'user',
  'password',
  'session_id',
  'session_timeout',
  'session_check',
  'role',
]);

async function serve(dataDir: string, port: number): Promise<void> {
  const { Session } = await import('chdb');
  const session = new Session(dataDir);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/ping') return void res.end('Ok.\n');
      const body = Buffer.concat(chunks);
      const params: Record<string, string> = {};
      const settings: Record<string, string> = {};
      for (const [k, v] of url.searchParams) {
        if (k.startsWith('param_')) params[k.slice(6)] = v;
        else if (!NOT_SETTINGS.has(k)) settings[k] = v;
      }
      try {
        const urlQuery = url.searchParams.get('query');
        const insert = urlQuery && /^\s*INSERT\s+INTO\s+(\S+)(?:\s*\(([^)]*)\))?\s+FORMAT\s+(\w+)\s*$/i.exec(urlQuery);
        if (insert) {
          const columns = insert[2]?.split(',').map((c) => c.trim().replace(/^`|`$/g, ''));
          await session.insert({
            table: insert[1]!,
            values: body,
            format: insert[3] as 'JSONEachRow',
            settings,
            ...(columns ? { columns } : {}),
          });
          res.setHeader('X-ClickHouse-Summary', '{}');
          return void res.end();
        }
        const sql = [urlQuery, body.toString('utf8')].filter(Boolean).join('\n');
        const result = Object.keys(params).length
          ? await session.queryBindAsync(sql, params)
          : await session.queryAsync(sql);
        res.setHeader('X-ClickHouse-Summary', '{}');
        res.end(Buffer.from(result.bytes()));
      } catch (err) {
        const message = (err as Error).message ?? String(err);
        const code = /Code: (\d+)/.exec(message)?.[1] ?? '1000';
        res.statusCode = 500;
        res.setHeader('X-ClickHouse-Exception-Code', code);
        res.end(message.startsWith('Code:') ? message : `Code: ${code}. DB::Exception: ${message}`);
      }
    });
  });
  server.listen(port, '127.0.0.1', () => console.log(`ready ${(server.address() as { port: number }).port}`));
  const stop = () =>
    server.close(() => {
      session.close();
      process.exit(0);
    });
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The parent holds our stdin: when it dies without stopping us (a test process killed), we go too, rather than
  // live on as an orphan holding the test runner's stderr open.
  process.stdin.on('end', stop).resume();
}

/** Runs the endpoint in a child process; `stop` and `start` simulate an outage (same data, same port). */
export async function startChdbHttp(
  dataDir: string,
): Promise<{ url: string; stop: () => Promise<void>; start: () => Promise<void> }> {
  let child: ChildProcess | undefined;
  let port = 0;
  const start = async () => {
    child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), dataDir, String(port)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    port = await new Promise<number>((resolve, reject) => {
      child!.once('exit', (code) => reject(new Error(`chdb HTTP endpoint exited with ${code}`)));
      child!.stdout!.on('data', (d) => {
        const m = /ready (\d+)/.exec(String(d));
        if (m) resolve(Number(m[1]));
      });
    });
  };
  const stop = async () => {
    // A killed child keeps exitCode null (it has a signalCode instead): stopping twice must not wait forever.
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  await start();
  return { url: `http://127.0.0.1:${port}`, stop, start };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await serve(process.argv[2]!, Number(process.argv[3] ?? 0));
