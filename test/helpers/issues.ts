import { onTestFinished } from 'vitest';
import type { QualityIssue } from '../../src/diagnosis/index.js';
import type { Room } from '../../src/media/index.js';
import { waitFor } from './browser.js';
import type { TestGateway } from './gateway.js';

/**
 * The issues the call diagnosis raises and resolves in one room from now on, until the test ends. `room` may be a
 * function, for a room that does not exist yet (a browser's join makes it).
 */
export function issuesOf(gw: TestGateway, room: Room | (() => Room | undefined)) {
  const current = typeof room === 'function' ? room : () => room;
  const raised: QualityIssue[] = [];
  const resolved: QualityIssue[] = [];
  const onIssue = (i: QualityIssue) => i.room === current() && raised.push(i);
  const onResolved = (i: QualityIssue) => i.room === current() && resolved.push(i);
  gw.app.diagnosis.observer.on('issue', onIssue);
  gw.app.diagnosis.observer.on('resolved', onResolved);
  onTestFinished(() => {
    gw.app.diagnosis.observer.off('issue', onIssue);
    gw.app.diagnosis.observer.off('resolved', onResolved);
  });
  return {
    raised,
    resolved,
    /** What was raised, as `kind identity` ('server' for the server's issues). */
    list: () => raised.map((i) => `${i.kind} ${i.peer?.identity ?? 'server'}`),
    /** The first issue of this kind raised, once it is (`ms`: how long to wait for it). */
    raisedOf: async (kind: QualityIssue['kind'], ms = 30_000) =>
      (await waitFor(`a ${kind} issue`, async () => raised.find((i) => i.kind === kind), Boolean, ms))!,
    /** Waits for this issue to be resolved. */
    ended: (issue: QualityIssue, ms = 30_000) =>
      waitFor(`${issue.kind} to end`, async () => resolved.find((i) => i.id === issue.id), Boolean, ms),
    /** Their evidence too, for a failure's message. */
    detail: () => JSON.stringify(raised.map((i) => [i.kind, i.peer?.identity, i.evidence])),
  };
}
