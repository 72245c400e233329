/**
 * The minimal page of the join-page benchmark: mediasoup-client and a few
 * lines of signaling, no Vigie code. It does what Vigie's join page does on
 * the way to the first remote frame, and nothing else: join, load the device,
 * receive the others on one recv transport, publish camera and mic on one send
 * transport. With `?prejoin=1` it waits for a click on its "Join" button first,
 * as Vigie's page does once it has a pre-join screen.
 */
import { Device, type types } from 'mediasoup-client';

declare global {
  interface Window {
    bare: { published?: boolean; error?: string };
  }
}
window.bare = {};

let nextId = 1;
const pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
let device: Device;
let ws: WebSocket;

function request<T = any>(method: string, data: Record<string, unknown> = {}): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    ws.send(JSON.stringify({ id, method, data }));
  });
}

function onMessage(ev: MessageEvent): void {
  const msg = JSON.parse(String(ev.data));
  if (msg.notification) {
    if (msg.method === 'newProducer') void consume(msg.data.producerId);
    return;
  }
  const p = pending.get(msg.id);
  pending.delete(msg.id);
  if (msg.error) p?.reject(new Error(msg.error));
  else p?.resolve(msg.data);
}

async function createTransport(direction: 'send' | 'recv'): Promise<types.Transport> {
  const options = await request('createTransport', { direction });
  const transport = direction === 'send' ? device.createSendTransport(options) : device.createRecvTransport(options);
  transport.on('connect', ({ dtlsParameters }, callback, errback) => {
    request('connectTransport', { transportId: transport.id, dtlsParameters }).then(callback, errback);
  });
  transport.on('produce', ({ kind, rtpParameters }, callback, errback) => {
    request('produce', { transportId: transport.id, kind, rtpParameters }).then(callback, errback);
  });
  return transport;
}

let recv: Promise<types.Transport> | undefined;

async function consume(producerId: string): Promise<void> {
  recv ??= createTransport('recv');
  const transport = await recv;
  const c = await request('consume', {
    transportId: transport.id,
    producerId,
    rtpCapabilities: device.rtpCapabilities,
  });
  const consumer = await transport.consume(c);
  const media = document.createElement(consumer.kind === 'video' ? 'video' : 'audio');
  media.autoplay = true;
  media.muted = consumer.kind === 'video';
  media.srcObject = new MediaStream([consumer.track]);
  document.body.append(media);
  await request('resumeConsumer', { consumerId: consumer.id });
}

async function main(): Promise<void> {
  ws = new WebSocket(`ws://${location.host}/ws`);
  ws.addEventListener('message', onMessage);
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve);
    ws.addEventListener('error', reject);
  });
  const joined = await request<{ rtpCapabilities: types.RtpCapabilities; producerIds: string[] }>('join');
  device = new Device();
  await device.load({ routerRtpCapabilities: joined.rtpCapabilities });
  for (const id of joined.producerIds) void consume(id);

  const send = await createTransport('send');
  const camera = (
    await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } })
  ).getVideoTracks()[0]!;
  // The layers Vigie's SDK sends at 640x480 (simulcastEncodings), so that both servers forward the same media.
  await send.produce({
    track: camera,
    encodings: [
      { scaleResolutionDownBy: 2, maxBitrate: 500_000 },
      { scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
    ],
  });
  const mic = (await navigator.mediaDevices.getUserMedia({ audio: true })).getAudioTracks()[0]!;
  await send.produce({ track: mic });
  window.bare.published = true;
}

function run(): void {
  main().catch((err: Error) => (window.bare.error = err.message));
}

if (new URLSearchParams(location.search).get('prejoin') === '1') {
  const button = document.createElement('button');
  button.textContent = 'Join';
  button.addEventListener('click', () => {
    button.remove();
    run();
  });
  document.body.append(button);
} else {
  run();
}
