'use strict';

// Real servers for the integration tests: the chatvault binary (built from
// the repository), a loopback file server with real media bytes, and a hook
// receiver that records signed deliveries.

const { spawn, execFile, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..');

const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// chatvaultBinary returns CHATVAULT_BIN when set (scripts/test-zapier.sh
// builds it once), otherwise builds the service into a temporary folder.
const chatvaultBinary = async (tmpDir) => {
  if (process.env.CHATVAULT_BIN) {
    if (!fs.existsSync(process.env.CHATVAULT_BIN)) {
      throw new Error(`CHATVAULT_BIN=${process.env.CHATVAULT_BIN} does not exist`);
    }
    return process.env.CHATVAULT_BIN;
  }
  const out = path.join(tmpDir, 'chatvault');
  await promisify(execFile)('go', ['build', '-o', out, '.'], { cwd: REPO_ROOT, maxBuffer: 16 << 20 });
  return out;
};

// startChatvault starts one service instance and waits for /readyz.
const startChatvault = async ({ bin, tmpDir, allowlist, extraEnv = {} }) => {
  const port = await freePort();
  const apiKey = `cvtest_${crypto.randomBytes(16).toString('hex')}`;
  const prefix = `zaptest:${crypto.randomBytes(6).toString('hex')}:`;
  const storage = fs.mkdtempSync(path.join(tmpDir, 'store-'));
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME || tmpDir,
    CHATVAULT_ADDR: `127.0.0.1:${port}`,
    REDIS_URL: process.env.REDIS_URL || 'redis://127.0.0.1:6379/0',
    CHATVAULT_REDIS_PREFIX: prefix,
    STORAGE_URL: `file://${storage}`,
    CHATVAULT_DATA_DIR: path.join(tmpDir, 'data'),
    CHATVAULT_API_KEY: apiKey,
    CHATVAULT_SIGNING_SECRET: 'x',
    CHATVAULT_DEV_ALLOWLIST: allowlist.join(','),
    CHATVAULT_WORKERS: '2',
    CHATVAULT_LOG_LEVEL: 'warn',
    CHATVAULT_SHUTDOWN_TIMEOUT: '5s',
    ...extraEnv,
  };
  const child = spawn(bin, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (chunk) => {
    log = (log + chunk.toString()).slice(-20000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  child.on('exit', (code, signal) => {
    exited = { code, signal };
  });

  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30000;
  for (;;) {
    if (exited) {
      throw new Error(`chatvault exited (${JSON.stringify(exited)}) before it was ready:\n${log}`);
    }
    try {
      const res = await fetch(`${baseUrl}/readyz`);
      if (res.ok) {
        break;
      }
    } catch (_e) {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`chatvault was not ready within 30 s:\n${log}`);
    }
    await sleep(100);
  }

  return {
    baseUrl,
    apiKey,
    prefix,
    log: () => log,
    stop: async () => {
      if (!exited) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
        await done;
        clearTimeout(timer);
      }
      await dropRedisKeys(env.REDIS_URL, prefix);
    },
  };
};

// dropRedisKeys removes the instance's keys (best effort, with redis-cli).
const dropRedisKeys = async (redisUrl, prefix) => {
  const run = promisify(execFile);
  try {
    const { stdout } = await run('redis-cli', ['-u', redisUrl, '--scan', '--pattern', `${prefix}*`], { maxBuffer: 64 << 20 });
    const keys = stdout.split('\n').filter(Boolean);
    for (let i = 0; i < keys.length; i += 500) {
      await run('redis-cli', ['-u', redisUrl, 'DEL', ...keys.slice(i, i + 500)]);
    }
  } catch (_e) {
    // redis-cli missing or Redis gone: the keys only cost space.
  }
};

const listen = (server) =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));

const close = (server) =>
  new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });

// mediaBytes makes a small but real file: the bytes chatvault sniffs
// (%PDF-, OggS … OpusHead) and a unique tail, so no two names dedupe.
const mediaBytes = (kind, name) => {
  if (kind === 'pdf') {
    return Buffer.from(`%PDF-1.4\n% ${name}\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n`);
  }
  const head = Buffer.concat([Buffer.from('OggS'), Buffer.from([0, 2]), Buffer.from('0'.repeat(22)), Buffer.from('OpusHead'), Buffer.from([1, 1])]);
  return Buffer.concat([head, Buffer.from(` stand-in voice note ${name}`)]);
};

// haveFFmpeg says whether ffmpeg and ffprobe are on PATH: chatvault then
// processes media (CHATVAULT_PROCESSING=auto), and voiceNote can make one.
const haveFFmpeg = () =>
  ['ffmpeg', 'ffprobe'].every((bin) => {
    try {
      execFileSync(bin, ['-version'], { stdio: 'ignore' });
      return true;
    } catch (_e) {
      return false;
    }
  });

// voiceNote makes a real WhatsApp-like voice note with ffmpeg: seconds of
// mono Opus in Ogg, which chatvault's processing turns into an MP3.
const voiceNote = (tmpDir, seconds = 3, frequency = 440) => {
  const out = path.join(tmpDir, `voice-${frequency}-${seconds}.ogg`);
  execFileSync('ffmpeg', [
    '-nostdin', '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `sine=frequency=${frequency}:duration=${seconds}:sample_rate=48000`,
    '-ac', '1', '-c:a', 'libopus', '-b:a', '24k', '-application', 'voip', '-f', 'ogg', out,
  ]);
  return fs.readFileSync(out);
};

// startMediaServer serves /doc/<name>.pdf as application/pdf and
// /voice/<name>.ogg as audio/ogg (stand-ins that only look like the real
// thing), and whatever serve(path, body, contentType) added.
const startMediaServer = async () => {
  const hits = [];
  const files = new Map();
  const server = http.createServer((req, res) => {
    hits.push(req.url);
    const file = files.get(req.url);
    if (file) {
      res.writeHead(200, { 'Content-Type': file.contentType, 'Content-Length': file.body.length });
      res.end(file.body);
      return;
    }
    const m = /^\/(doc|voice)\/([A-Za-z0-9_-]+)\.(pdf|ogg)$/.exec(req.url);
    if (!m || (m[1] === 'doc') !== (m[3] === 'pdf')) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
      return;
    }
    const body = mediaBytes(m[3], m[2]);
    res.writeHead(200, {
      'Content-Type': m[3] === 'pdf' ? 'application/pdf' : 'audio/ogg',
      'Content-Length': body.length,
      'Last-Modified': new Date(0).toUTCString(),
    });
    res.end(body);
  });
  const port = await listen(server);
  return {
    port,
    host: `127.0.0.1:${port}`,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    hits,
    serve: (p, body, contentType) => files.set(p, { body, contentType }),
    stop: () => close(server),
  };
};

// startHookReceiver records every delivery with its raw body and answers 200
// (or the status set for a path with respond()).
const startHookReceiver = async () => {
  const deliveries = [];
  const statuses = new Map();
  const waiters = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const delivery = {
        path: req.url,
        method: req.method,
        headers: req.headers,
        rawBody: Buffer.concat(chunks).toString('utf8'),
        receivedAt: Math.floor(Date.now() / 1000),
      };
      deliveries.push(delivery);
      for (const w of waiters.slice()) {
        if (w.match(delivery)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(delivery);
        }
      }
      res.writeHead(statuses.get(req.url) || 200, { 'Content-Type': 'text/plain' });
      res.end('ok');
    });
  });
  const port = await listen(server);
  return {
    port,
    host: `127.0.0.1:${port}`,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    deliveries,
    respond: (p, status) => statuses.set(p, status),
    waitFor: (match, timeoutMs = 20000) => {
      const found = deliveries.find(match);
      if (found) {
        return Promise.resolve(found);
      }
      return new Promise((resolve, reject) => {
        const w = { match, resolve };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) {
            waiters.splice(i, 1);
            reject(new Error(`no matching delivery within ${timeoutMs} ms; got ${deliveries.length}: ${JSON.stringify(deliveries.map((d) => d.path))}`));
          }
        }, timeoutMs).unref();
      });
    },
    stop: () => close(server),
  };
};

const makeTmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'chatvault-zapier-'));

module.exports = {
  REPO_ROOT,
  chatvaultBinary,
  startChatvault,
  startMediaServer,
  startHookReceiver,
  makeTmpDir,
  sleep,
  haveFFmpeg,
  voiceNote,
};
