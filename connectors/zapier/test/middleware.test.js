'use strict';

process.env.NODE_ENV = 'test';

const assert = require('node:assert/strict');
const { describe, it } = require('node:test');

const zapier = require('zapier-platform-core');

const { resolveAndAuthorize, mapErrors, retryAfterSeconds } = require('../lib/middleware');
const { canonicalJSON, idempotencyKey, tagList } = require('../lib/util');
const { archiveBody } = require('../creates/archive_media');
const { tagBody } = require('../creates/tag_media');
const { verifySignature } = require('../triggers/new_media_archived');

const z = { errors: zapier.errors };

const fakeResponse = ({ status, headers = {}, body, request = {} }) => {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const content = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  let data;
  try {
    data = JSON.parse(content);
  } catch (_e) {
    data = undefined;
  }
  return {
    status,
    headers: { get: (n) => (n.toLowerCase() in lower ? lower[n.toLowerCase()] : null) },
    content,
    data,
    request: { url: 'http://cv.test/v1/media', headers: {}, ...request },
    skipThrowForStatus: request.skipThrowForStatus,
  };
};

const problem = (status, kind, detail) => ({
  type: `urn:chatvault:problem:${kind}`,
  title: kind,
  status,
  detail,
  instance: '/v1/media',
  request_id: 'req123',
});

const parsed = (err) => JSON.parse(err.message);

describe('beforeRequest', () => {
  const bundle = { authData: { base_url: ' https://cv.example.com/// ', api_key: ' key_1 ' } };

  it('resolves paths against the base URL without doubling slashes and adds the key', () => {
    const req = resolveAndAuthorize({ url: '/v1/me', headers: {} }, z, bundle);
    assert.equal(req.url, 'https://cv.example.com/v1/me');
    assert.equal(req.headers.Authorization, 'Bearer key_1');
    assert.equal(req.headers.Accept, 'application/json');
    assert.equal(resolveAndAuthorize({ url: 'v1/tags' }, z, bundle).url, 'https://cv.example.com/v1/tags');
  });

  it('keeps the key away from other hosts', () => {
    const req = resolveAndAuthorize({ url: 'https://elsewhere.example.net/file.pdf', headers: {} }, z, bundle);
    assert.equal(req.url, 'https://elsewhere.example.net/file.pdf');
    assert.equal(req.headers.Authorization, undefined);
  });

  it('leaves an explicit Accept or Authorization alone', () => {
    const req = resolveAndAuthorize({ url: '/x', headers: { accept: 'text/plain', authorization: 'Bearer other' } }, z, bundle);
    assert.equal(req.headers.accept, 'text/plain');
    assert.equal(req.headers.Accept, undefined);
    assert.equal(req.headers.Authorization, undefined);
  });

  it('asks for a base URL when the connection has none', () => {
    assert.throws(() => resolveAndAuthorize({ url: '/v1/me' }, z, { authData: { api_key: 'k' } }), /no Base URL/);
  });
});

describe('afterResponse error mapping', () => {
  it('passes successes through', () => {
    const res = fakeResponse({ status: 201, body: { id: 'med_1' } });
    assert.equal(mapErrors(res, z), res);
  });

  it('turns 429 into a ThrottledError with Retry-After seconds and the detail', () => {
    const res = fakeResponse({
      status: 429,
      headers: { 'Retry-After': '17', RateLimit: '"key";r=0;t=17', 'Content-Type': 'application/problem+json' },
      body: problem(429, 'rate_limited', 'Rate limit exceeded for this API key.'),
    });
    assert.throws(
      () => mapErrors(res, z),
      (err) => {
        assert.ok(err instanceof zapier.errors.ThrottledError);
        const m = parsed(err);
        assert.equal(m.delay, 17);
        assert.match(m.message, /Rate limit exceeded for this API key\..*req123/);
        return true;
      },
    );
  });

  it('falls back to RateLimit t= and then to a minute', () => {
    assert.equal(retryAfterSeconds(fakeResponse({ status: 429, headers: { RateLimit: '"key";r=0;t=42' } })), 42);
    assert.equal(retryAfterSeconds(fakeResponse({ status: 429 })), 60);
    const date = new Date(Date.now() + 30000).toUTCString();
    const s = retryAfterSeconds(fakeResponse({ status: 429, headers: { 'Retry-After': date } }));
    assert.ok(s >= 28 && s <= 31, `got ${s}`);
  });

  it('names the API key on 401 and the scopes on 403', () => {
    const e401 = assert.throws(() => mapErrors(fakeResponse({ status: 401, body: problem(401, 'unauthorized', 'the API key is not valid') }), z), (err) => {
      const m = parsed(err);
      assert.equal(err.name, 'AppError');
      assert.equal(m.status, 401);
      assert.equal(m.code, 'urn:chatvault:problem:unauthorized');
      assert.match(m.message, /did not accept the API key: the API key is not valid/);
      return true;
    });
    assert.equal(e401, undefined);
    assert.throws(() => mapErrors(fakeResponse({ status: 403, body: problem(403, 'forbidden', 'This API key lacks the media:write scope.') }), z), (err) => {
      const m = parsed(err);
      assert.equal(m.status, 403);
      assert.match(m.message, /lacks the media:write scope.*hooks:manage/);
      return true;
    });
  });

  it('maps any problem+json to Error(detail, type, status)', () => {
    assert.throws(() => mapErrors(fakeResponse({ status: 415, body: problem(415, 'unsupported_media', 'the bytes are not audio') }), z), (err) => {
      const m = parsed(err);
      assert.deepEqual([m.code, m.status], ['urn:chatvault:problem:unsupported_media', 415]);
      assert.match(m.message, /^the bytes are not audio \(chatvault request ID req123\)$/);
      return true;
    });
  });

  it('reports a non-problem error body', () => {
    assert.throws(() => mapErrors(fakeResponse({ status: 502, body: '<html>Bad Gateway</html>', headers: { 'X-Request-ID': 'abc' } }), z), (err) => {
      const m = parsed(err);
      assert.deepEqual([m.code, m.status], ['http_502', 502]);
      assert.match(m.message, /HTTP 502: <html>Bad Gateway<\/html> \(chatvault request ID abc\)/);
      return true;
    });
  });

  it('reschedules a 409 of a request still running under the same Idempotency-Key', () => {
    const res = fakeResponse({
      status: 409,
      body: problem(409, 'conflict', 'a request with this Idempotency-Key is in progress'),
      request: { headers: { 'Idempotency-Key': 'k' } },
    });
    assert.throws(() => mapErrors(res, z), (err) => err instanceof zapier.errors.ThrottledError && parsed(err).delay === 10);
  });

  it('lets a request with skipThrowForStatus handle its own status', () => {
    const res = fakeResponse({ status: 410, body: problem(410, 'gone', 'gone'), request: { skipThrowForStatus: true } });
    assert.equal(mapErrors(res, z), res);
  });
});

describe('idempotency keys', () => {
  it('are the same for the same inputs in any key order, and differ otherwise', () => {
    assert.equal(canonicalJSON({ b: 1, a: [{ d: 2, c: 3 }] }), '{"a":[{"c":3,"d":2}],"b":1}');
    const input = {
      customer_id: 'cust_1',
      source_type: 'url',
      url: 'https://files.example.net/a.pdf',
      tags: ['Invoice', 'vip'],
      metadata: { deal: '1', owner: 'x' },
      caption: 'hi',
    };
    const reordered = { metadata: { owner: 'x', deal: '1' }, caption: 'hi', tags: ['Invoice', 'vip'], url: 'https://files.example.net/a.pdf', source_type: 'url', customer_id: 'cust_1' };
    const k1 = idempotencyKey('archive_media', archiveBody(z, input));
    const k2 = idempotencyKey('archive_media', archiveBody(z, reordered));
    const k3 = idempotencyKey('archive_media', archiveBody(z, { ...input, caption: 'other' }));
    assert.equal(k1, k2);
    assert.notEqual(k1, k3);
    assert.match(k1, /^zapier-archive_media-[0-9a-f]{64}$/);
    assert.ok(k1.length <= 255);
  });
});

describe('request bodies', () => {
  it('builds the archive body from the inputs, leaving empties out', () => {
    assert.deepEqual(
      archiveBody(z, {
        customer_id: ' wa:4915112345678 ',
        source_type: 'whatsapp_cloud',
        media_id: '1013859600285441',
        url: 'https://ignored.example',
        kind: '',
        tags: ['support, Voice-Note', 'support'],
        caption: '',
        metadata: { hubspot_deal_id: '90210' },
        message_id: 'wamid.X',
        from: '4915112345678',
        timestamp: '1732529730',
      }),
      {
        customer_id: 'wa:4915112345678',
        source: { type: 'whatsapp_cloud', media_id: '1013859600285441' },
        message: { id: 'wamid.X', from: '4915112345678', timestamp: '1732529730' },
        tags: ['support', 'Voice-Note'],
        metadata: { hubspot_deal_id: '90210' },
      },
    );
    assert.throws(() => archiveBody(z, { customer_id: 'c', source_type: 'url' }), /URL is required/);
    assert.throws(() => archiveBody(z, { customer_id: 'c', source_type: 'dialog360' }), /Media ID is required/);
    assert.throws(() => archiveBody(z, { customer_id: 'c', source_type: 'fax', url: 'x' }), /Source Type must be one of/);
  });

  it('builds the tag body and wants at least one change', () => {
    assert.deepEqual(tagBody(z, { add: ['vip'], remove: 'pending,old' }), { add: ['vip'], remove: ['pending', 'old'] });
    assert.deepEqual(tagList(undefined), []);
    assert.throws(() => tagBody(z, { add: [], remove: '' }), /at least one tag/);
  });
});

describe('delivery signatures', () => {
  const crypto = require('node:crypto');
  const secret = 'whsec_test';
  const content = '{"id":"evt_1","type":"media.archived","data":{"media":{"id":"med_1"}}}';
  const sign = (t, body = content) => crypto.createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  const now = 1732529700;

  it('accepts a good signature under Zapier\'s Http- header name', () => {
    const raw = { headers: { 'Http-Chatvault-Signature': `t=${now},v1=${sign(now)}` }, content };
    assert.deepEqual(verifySignature(secret, raw, now + 5), { ok: true });
  });

  it('refuses a tampered body, a wrong secret, an old timestamp and a missing header', () => {
    const good = `t=${now},v1=${sign(now)}`;
    assert.equal(verifySignature(secret, { headers: { 'chatvault-signature': good }, content: content.replace('med_1', 'med_2') }, now).ok, false);
    assert.equal(verifySignature('whsec_other', { headers: { 'chatvault-signature': good }, content }, now).ok, false);
    assert.equal(verifySignature(secret, { headers: { 'chatvault-signature': good }, content }, now + 3600).reason, 'the signature is too old');
    assert.equal(verifySignature(secret, { headers: {}, content }, now).ok, false);
    assert.equal(verifySignature(secret, { headers: { 'chatvault-signature': 'v1=zz' }, content }, now).ok, false);
  });
});

describe('archive timeout', () => {
  const http = require('node:http');
  const archiveMedia = require('../creates/archive_media');
  const App = require('../index');

  it("reports a slow archive clearly instead of running into Zapier's limit", async () => {
    const server = http.createServer(() => {
      // never answers
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const saved = archiveMedia.settings.requestTimeoutMs;
    archiveMedia.settings.requestTimeoutMs = 300;
    try {
      const appTester = zapier.createAppTester(App);
      await assert.rejects(
        appTester(App.creates.archive_media.operation.perform, {
          authData: { base_url: `http://127.0.0.1:${server.address().port}`, api_key: 'k' },
          inputData: { customer_id: 'c1', source_type: 'url', url: 'https://files.example.net/a.pdf' },
        }),
        (err) => {
          const m = JSON.parse(err.message);
          assert.equal(m.code, 'timeout');
          assert.match(m.message, /did not finish the archive within 0 s.*Replaying this step is safe/);
          return true;
        },
      );
    } finally {
      archiveMedia.settings.requestTimeoutMs = saved;
      server.closeAllConnections();
      server.close();
    }
  });
});
