import { execFileSync, spawn } from 'node:child_process';
import os from 'node:os';

/**
 * Starves a process (a mediasoup worker) of CPU: it gets the weakest share of core 0, where two busy loops get the
 * strongest. Returns what gives it back its core and priority; calling it twice is harmless.
 */
export function starveProcess(pid: number): () => void {
  execFileSync('taskset', ['-p', '-c', '0', String(pid)], { stdio: 'ignore' });
  execFileSync('renice', ['-n', '19', '-p', String(pid)], { stdio: 'ignore' });
  const hogs = [0, 1].map(() =>
    spawn('taskset', ['-c', '0', 'nice', '-n', '-20', process.execPath, '-e', 'for(;;);'], { stdio: 'ignore' }),
  );
  let released = false;
  return () => {
    if (released) return;
    released = true;
    for (const h of hogs) h.kill('SIGKILL');
    execFileSync('renice', ['-n', '0', '-p', String(pid)], { stdio: 'ignore' });
    execFileSync('taskset', ['-p', '-c', `0-${os.cpus().length - 1}`, String(pid)], { stdio: 'ignore' });
  };
}
