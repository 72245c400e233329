/**
 * With BENCH_PROFILE=1, the join-page benchmark profiles the CPU of the
 * process that runs both servers from the click to the first frame, and sums
 * each function's own time per server over the warm measures: what runs on the
 * event loop while a page joins (the servers' handlers, the gateway's
 * bookkeeping, and the benchmark's own driver, which both sides pay alike).
 */
import { Session } from 'node:inspector/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export class WindowProfiler {
  readonly #session = new Session();
  /** Own time in ms by "function file:line", per label. */
  readonly totals = new Map<string, Map<string, number>>();
  readonly #windows = new Map<string, number>();

  async start(): Promise<void> {
    this.#session.connect();
    await this.#session.post('Profiler.enable');
    await this.#session.post('Profiler.setSamplingInterval', { interval: 200 });
  }

  async begin(): Promise<void> {
    await this.#session.post('Profiler.start');
  }

  async end(label: string): Promise<void> {
    const { profile } = (await this.#session.post('Profiler.stop')) as unknown as { profile: Profile };
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const totals = this.totals.get(label) ?? new Map<string, number>();
    this.totals.set(label, totals);
    this.#windows.set(label, (this.#windows.get(label) ?? 0) + 1);
    profile.samples.forEach((id, i) => {
      const f = byId.get(id)!.callFrame;
      const file = f.url.replace(/^.*\/(node_modules|src|bench|test)\//, '$1/');
      const key = `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}`;
      totals.set(key, (totals.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
    });
  }

  /** The `n` functions with the most own time per label, in ms per window. */
  report(n = 25): string {
    const lines: string[] = [];
    for (const [label, totals] of this.totals) {
      const windows = this.#windows.get(label) ?? 1;
      lines.push(`[join-page] profile ${label} (${windows} windows, ms per window):`);
      for (const [key, ms] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, n))
        lines.push(`[join-page]   ${(ms / windows).toFixed(2).padStart(7)} ${key}`);
    }
    return lines.join('\n');
  }
}
