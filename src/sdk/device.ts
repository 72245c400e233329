import { Device, detectDevice, type types as msc } from 'mediasoup-client';
import { Chrome74 } from 'mediasoup-client/handlers/Chrome74';
import { Chrome111 } from 'mediasoup-client/handlers/Chrome111';
import { Firefox120 } from 'mediasoup-client/handlers/Firefox120';
import { Safari12 } from 'mediasoup-client/handlers/Safari12';

type HandlerFactory = NonNullable<NonNullable<ConstructorParameters<typeof Device>[0]>['handlerFactory']>;

/** The browser handlers mediasoup-client picks from (Device's own detection), by the name detectDevice gives. */
const HANDLERS = { Chrome111, Chrome74, Firefox120, Safari12 } as const;

/** The page's one handler factory; null once detection found no browser handler (Device then decides). */
let shared: HandlerFactory | null | undefined;

/**
 * The browser's mediasoup-client handler, with its native RTP capabilities
 * asked for once per page and kept. `Device.load` asks for them with two
 * throwaway RTCPeerConnections and their offers, 20 to 30 ms in Chromium
 * (bench/README.md, "Join page"), and only after the join is answered. They
 * describe this browser, not the call or the server, so one answer serves
 * every Device of the page, a rejoin's too; asked for ahead of the join
 * (`warmUpDevice`), they are ready when the join's answer comes. A failed
 * probe is not kept: the next load asks again.
 */
function handlerFactory(): HandlerFactory | undefined {
  if (shared !== undefined) return shared ?? undefined;
  const name = detectDevice();
  const base =
    name && Object.hasOwn(HANDLERS, name) ? HANDLERS[name as keyof typeof HANDLERS].createFactory({}) : undefined;
  if (!base) {
    shared = null;
    return undefined;
  }
  const asked = new Map<string, Promise<msc.RtpCapabilities>>();
  shared = {
    name: base.name,
    factory: base.factory,
    getNativeRtpCapabilities: (options) => {
      let caps = asked.get(options.direction);
      if (!caps) {
        caps = base.getNativeRtpCapabilities(options);
        asked.set(options.direction, caps);
        caps.catch(() => asked.delete(options.direction));
      }
      return caps;
    },
  };
  return shared;
}

/** A Device on the page's shared handler (see handlerFactory), or mediasoup-client's own choice without one. */
export function newDevice(): Device {
  const factory = handlerFactory();
  return factory ? new Device({ handlerFactory: factory }) : new Device();
}

/** Starts asking the browser for its native RTP capabilities, so that a Device loads without waiting for them. */
export function warmUpDevice(): void {
  const factory = handlerFactory();
  for (const direction of ['recvonly', 'sendonly'] as const)
    void factory?.getNativeRtpCapabilities({ direction }).catch(() => undefined);
}
