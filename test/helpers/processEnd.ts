/**
 * Runs `cleanUp` (synchronous: nothing asynchronous runs once a process is exiting) when the process ends: on
 * `exit`, which a normal end, `process.exit` and an uncaught error or rejection all emit, and on SIGINT or SIGTERM,
 * whose default action would skip `exit`. After a signal the process still dies by it, as without this handler,
 * unless something else handles that signal. `cleanUp` may run more than once and must not mind.
 */
export function onProcessEnd(cleanUp: () => void): void {
  process.once('exit', cleanUp);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = () => {
      cleanUp();
      process.removeListener(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}
