// The bench's Node.js peer: quiesce's public task routes and event stream, written the way a
// competent Node user would (http + ws from npm), so bench/ can compare against it in one run.
// Not a product: memory only, the `sleep` kind only.
//
//   node server.js [--port 8100] [--workers 8] [--queue-capacity 1000] [--send-queue 256]
//                  [--shutdown-timeout 25] [--close-timeout 2]
//
// The drain is a real one: SIGTERM closes the listener at once, every accepted task finishes and
// is announced, then each stream gets `draining` and a 1012 close, and the process exits 0 once
// they are closed. The deadline or a second signal interrupts what is left and exits 2.
'use strict';
const http = require('http');
const crypto = require('crypto');
const { WebSocketServer } = require('ws');

const opt = { port: 8100, workers: 8, queueCapacity: 1000, sendQueue: 256, shutdownTimeout: 25,
  closeTimeout: 2 };
for (let i = 2; i + 1 < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '').replace(/-(.)/g, (_, c) => c.toUpperCase());
  if (!(key in opt)) throw new Error(`unknown option ${process.argv[i]}`);
  opt[key] = Number(process.argv[i + 1]);
}

const epoch = crypto.randomUUID();
const tasks = new Map();  // id -> record
const queue = [];         // ids waiting for a worker
let running = 0, seq = 0, draining = false;
const streams = new Set();

function publish(t) {
  // One serialisation per event, shared by every stream.
  const text = JSON.stringify({ type: 'task', seq: ++seq, ...t });
  for (const ws of streams) {
    if (ws.readyState !== ws.OPEN) continue;
    // ws queues what the socket does not take: bufferedAmount is its queue in bytes. A client that
    // falls this far behind is closed 1013, as quiesce does (its limit is in frames).
    if (ws.bufferedAmount > opt.sendQueue * text.length) { ws.close(1013, 'send queue full'); continue; }
    ws.send(text);
  }
}

function move(t, status, extra = {}) {
  Object.assign(t, { status, message: `Task ${t.task_id} ${status}` }, extra);
  publish(t);
}

function startNext() {
  while (running < opt.workers && queue.length) {
    const t = tasks.get(queue.shift());
    running++;
    move(t, 'running', { started_at: new Date().toISOString() });
    const tenth = t.params.seconds * 100;  // ms
    let step = 0;
    const tick = () => {
      if (t.status !== 'running') return;  // interrupted
      if (++step < 10) { move(t, 'running', { progress: step / 10 }); t.timer = setTimeout(tick, tenth); return; }
      end(t, 'succeeded', { progress: 1, result: { slept: t.params.seconds } });
    };
    // A zero-second task ends on the next turn, as quiesce's does: ten setTimeout(0)s would be
    // ten 1 ms clamps.
    if (!tenth) { setImmediate(() => { if (t.status === 'running') end(t, 'succeeded', { progress: 1, result: { slept: 0 } }); }); continue; }
    t.timer = setTimeout(tick, tenth);
  }
  idleCheck();
}

function end(t, status, extra = {}) {
  clearTimeout(t.timer);
  delete t.timer;
  running--;
  move(t, status, { finished_at: new Date().toISOString(), ...extra });
  startNext();
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text),
    ...(draining ? { connection: 'close' } : {}), ...headers });
  res.end(text);
}

function admit(req, res, body) {
  if (draining) return send(res, 503, { error: 'draining', detail: 'server shutting down' }, { 'retry-after': '5' });
  let params;
  try { params = body ? JSON.parse(body) : {}; } catch { return send(res, 400, { error: 'malformed_json', detail: 'the body is not JSON' }); }
  const { kind = 'sleep', seconds = 2 } = params;
  if (kind !== 'sleep') return send(res, 400, { error: 'unknown_kind', detail: `unknown kind '${kind}'` });
  if (typeof seconds !== 'number' || seconds < 0 || seconds > 20) return send(res, 400, { error: 'bad_parameter', detail: 'seconds: 0 to 20' });
  if (queue.length >= opt.queueCapacity) return send(res, 429, { error: 'queue_full', detail: 'the task queue is full' }, { 'retry-after': '1' });
  const id = crypto.randomUUID();
  const t = { task_id: id, kind, params: { seconds }, status: 'queued', progress: 0, message: `Task ${id} queued`,
    created_at: new Date().toISOString(), started_at: null, finished_at: null, result: null, error: null, attempt: 1 };
  tasks.set(id, t);
  queue.push(id);
  publish(t);
  send(res, 202, t, { location: `/v1/tasks/${id}` });
  startNext();
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const path = req.url.split('?')[0];
    const task = path.match(/^\/v1\/tasks\/([^/]+)$/);
    if (req.method === 'POST' && path === '/v1/tasks') return admit(req, res, Buffer.concat(chunks).toString());
    if (req.method === 'GET' && task) {
      const t = tasks.get(task[1]);
      return t ? send(res, 200, t) : send(res, 404, { error: 'task_not_found', detail: 'Task not found' });
    }
    if (req.method === 'GET' && (path === '/readyz' || path === '/v1/health'))
      return draining ? send(res, 503, { status: 'draining' }) : send(res, 200, { status: 'ok' });
    send(res, 404, { error: 'not_found', detail: 'no such route' });
  });
});

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
server.on('upgrade', (req, socket, head) => {
  const m = req.url.match(/^\/ws\/([^/?]+)/);
  if (!m || draining) { socket.destroy(); return; }
  wss.handleUpgrade(req, socket, head, (ws) => {
    streams.add(ws);
    ws.on('close', () => { streams.delete(ws); idleCheck(); });
    ws.on('error', () => {});
    ws.send(JSON.stringify({ type: 'hello', client_id: m[1], pod: 'node-peer', namespace: '', epoch, seq }));
  });
});

// The drain: idle once nothing is queued or running; then every stream is told and closed.
let onIdle = null;
function idleCheck() { if (onIdle && !queue.length && !running) { const f = onIdle; onIdle = null; f(); } }
function closeStreams(code) {
  const last = JSON.stringify({ type: 'draining', reason: 'server shutting down', epoch, last_seq: seq,
    reconnect_after_ms: 100 + Math.floor(Math.random() * 900) });
  for (const ws of streams) { ws.send(last); ws.close(1012, 'server restarting'); }
  const bound = setTimeout(() => { for (const ws of streams) ws.terminate(); process.exit(code); }, opt.closeTimeout * 1000);
  const check = setInterval(() => { if (!streams.size) { clearTimeout(bound); process.exit(code); } }, 5);
  check.unref();
}
function interrupt() {
  for (const id of queue.splice(0)) move(tasks.get(id), 'interrupted', { error: 'the server shut down before the task started' });
  for (const t of tasks.values()) if (t.status === 'running') end(t, 'interrupted', { error: 'interrupted by the shutdown deadline' });
  closeStreams(2);
}
let signals = 0;
function onSignal() {
  if (++signals > 1) { onIdle = null; return interrupt(); }
  draining = true;
  server.close();                 // no new connections from now on
  server.closeIdleConnections();  // keep-alive connections with nothing in flight
  const deadline = setTimeout(() => { onIdle = null; interrupt(); }, opt.shutdownTimeout * 1000);
  onIdle = () => { clearTimeout(deadline); closeStreams(0); };
  idleCheck();
}
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);

server.listen(opt.port, '127.0.0.1', () => console.log(JSON.stringify({ msg: 'listening', port: server.address().port })));
