'use strict';

// The app against a real chatvault: the service binary built from this
// repository, real Redis, file storage, a loopback media server and a hook
// receiver. Nothing is mocked.

process.env.NODE_ENV = 'test';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const { after, before, describe, it } = require('node:test');

const zapier = require('zapier-platform-core');

const App = require('../index');
const { archiveRequest } = require('../creates/archive_media');
const { tagRequest } = require('../creates/tag_media');
const servers = require('./support/servers');

const appTester = zapier.createAppTester(App);

const auth = App.authentication;
const archive = App.creates.archive_media.operation.perform;
const tag = App.creates.tag_media.operation.perform;
const search = App.searches.find_customer_media.operation.perform;
const listTags = App.triggers.list_tags.operation.perform;
const hook = App.triggers.new_media_archived.operation;
const processedHook = App.triggers.media_processed.operation;

// Zapier renders the connection label from the auth fields and the test's
// answer, both lifted to the top level.
const renderLabel = (template, authData, testResult) =>
  template.replace(/{{\s*([\w.]+)\s*}}/g, (_m, name) => {
    const key = name.replace(/^bundle\.(authData|inputData)\./, '');
    const v = testResult[key] !== undefined ? testResult[key] : authData[key];
    return v === undefined ? '' : String(v);
  });

// Checked the way docs/EVENTS.md says, independently of the app's own check.
const checkSignature = (secret, headerValue, rawBody, nowSeconds) => {
  const parts = Object.fromEntries(headerValue.split(',').map((p) => p.split('=', 2)));
  const t = Number(parts.t);
  const expected = crypto.createHmac('sha256', secret).update(`${parts.t}.${rawBody}`).digest();
  const given = Buffer.from(parts.v1 || '', 'hex');
  return (
    Number.isInteger(t) &&
    Math.abs(nowSeconds - t) <= 300 &&
    given.length === expected.length &&
    crypto.timingSafeEqual(given, expected)
  );
};

const appError = (err) => {
  assert.ok(err && err.message, `an error: ${err}`);
  return { name: err.name, ...JSON.parse(err.message) };
};

let tmpDir;
let media;
let receiver;
let cv;
let authData;
let bin;
const run = `r${crypto.randomBytes(4).toString('hex')}`;

const bundle = (inputData = {}, extra = {}) => ({ authData, inputData, meta: {}, ...extra });

describe('chatvault Zapier app against a real chatvault', { timeout: 600000 }, () => {
  before(async () => {
    tmpDir = servers.makeTmpDir();
    bin = await servers.chatvaultBinary(tmpDir);
    media = await servers.startMediaServer();
    receiver = await servers.startHookReceiver();
    cv = await servers.startChatvault({ bin, tmpDir, allowlist: [media.host, receiver.host] });
    // A trailing slash, as people paste it: the app must strip it.
    authData = { base_url: `${cv.baseUrl}/`, api_key: cv.apiKey };
  });

  after(async () => {
    await cv?.stop();
    await media?.stop();
    await receiver?.stop();
    if (tmpDir) {
      fs.rmSync(tmpDir, { recursive: true, force: true });
    }
  });

  describe('authentication', () => {
    it('tests the key with GET /v1/me and labels the connection with tenant and key', async () => {
      const me = await appTester(auth.test, bundle());
      assert.equal(me.tenant_id, 'dev');
      assert.equal(me.key_id, 'dev');
      for (const scope of ['media:write', 'media:read', 'media:tag', 'hooks:manage']) {
        assert.ok(me.scopes.includes(scope), `dev key has ${scope}: ${me.scopes}`);
      }
      assert.equal(renderLabel(auth.connectionLabel, authData, me), 'dev (dev)');
    });

    it('refuses a wrong key with an Error that names the API key', async () => {
      await assert.rejects(appTester(auth.test, { authData: { ...authData, api_key: 'cvtest_wrong' } }), (err) => {
        const e = appError(err);
        assert.equal(e.name, 'AppError');
        assert.equal(e.status, 401);
        assert.equal(e.code, 'urn:chatvault:problem:unauthorized');
        assert.match(e.message, /did not accept the API key/);
        assert.ok(!e.message.includes('cvtest_wrong'), 'the key is not echoed');
        return true;
      });
    });
  });

  describe('creates and search', () => {
    const customer = `wa:49151${Date.now() % 1000000}`;
    let archived;

    it('archives a PDF by URL and returns the Media record with crm_fields', async () => {
      const url = media.url(`/doc/invoice-${run}.pdf`);
      archived = await appTester(
        archive,
        bundle({
          customer_id: customer,
          source_type: 'url',
          url,
          tags: ['Invoice'],
          caption: 'November invoice',
          metadata: { hubspot_deal_id: '90210' },
          message_id: `wamid.${run}`,
          from: '4915112345678',
          timestamp: '2024-11-25T10:15:30Z',
          filename: 'invoice.pdf',
        }),
      );
      assert.match(archived.id, /^med_[0-9A-Z]{26}$/);
      assert.equal(archived.customer_id, customer);
      assert.equal(archived.kind, 'document');
      assert.equal(archived.mime_type, 'application/pdf');
      assert.deepEqual(archived.tags, ['invoice']);
      assert.deepEqual(archived.metadata, { hubspot_deal_id: '90210' });
      assert.equal(archived.caption, 'November invoice');
      assert.equal(archived.filename, 'invoice.pdf');
      assert.deepEqual(archived.source, {
        type: 'url',
        url,
        message_id: `wamid.${run}`,
        from: '4915112345678',
        received_at: '2024-11-25T10:15:30Z',
      });
      const bytes = Buffer.from(`%PDF-1.4\n% invoice-${run}\n`);
      assert.equal(archived.crm_fields.type, 'document');
      assert.equal(archived.crm_fields.tags, 'invoice');
      assert.equal(archived.crm_fields.received_at, '2024-11-25T10:15:30Z');
      assert.equal(archived.crm_fields.size_bytes, String(archived.size_bytes));
      // The CRM URL needs no key and serves the very bytes.
      const got = await fetch(archived.crm_fields.url);
      assert.equal(got.status, 200);
      const body = Buffer.from(await got.arrayBuffer());
      assert.ok(body.subarray(0, bytes.length).equals(bytes));
      assert.equal(crypto.createHash('sha256').update(body).digest('hex'), archived.sha256);
    });

    it('replays the same inputs with the same Idempotency-Key instead of archiving twice', async () => {
      const inputs = {
        customer_id: customer,
        source_type: 'url',
        url: media.url(`/voice/replay-${run}.ogg`),
        tags: ['voice-note', 'support'],
        message_id: `wamid.replay.${run}`,
      };
      // The request the create sends, read whole to see its headers.
      const send = (inputData) =>
        appTester(async (z, b) => {
          const res = await archiveRequest(z, b);
          return {
            status: res.status,
            replayed: res.getHeader('idempotent-replayed'),
            key: res.request.headers['Idempotency-Key'],
            id: res.data.id,
            kind: res.data.kind,
          };
        }, bundle(inputData));
      const first = await send(inputs);
      // Zapier may hand over the same inputs in another order.
      const second = await send({ message_id: inputs.message_id, tags: inputs.tags, url: inputs.url, source_type: 'url', customer_id: customer });
      assert.equal(first.status, 201);
      assert.equal(first.replayed, null);
      assert.equal(first.kind, 'audio');
      assert.equal(second.replayed, 'true');
      assert.equal(second.status, 201);
      assert.equal(second.key, first.key);
      assert.equal(second.id, first.id);
      assert.equal(media.hits.filter((h) => h.includes(`replay-${run}`)).length, 1, 'fetched once');
      // And through the create itself.
      const third = await appTester(archive, bundle(inputs));
      assert.equal(third.id, first.id);
    });

    it('tags media, replaying an identical tag step', async () => {
      const tagged = await appTester(tag, bundle({ media_id: archived.id, add: ['VIP', 'paid'], remove: ['invoice'] }));
      assert.equal(tagged.id, archived.id);
      assert.deepEqual(tagged.tags, ['paid', 'vip']);
      assert.equal(tagged.crm_fields.tags, 'paid,vip');
      const again = await appTester(async (z, b) => {
        const res = await tagRequest(z, b);
        return { replayed: res.getHeader('idempotent-replayed'), tags: res.data.tags };
      }, bundle({ media_id: archived.id, add: ['VIP', 'paid'], remove: ['invoice'] }));
      assert.deepEqual(again, { replayed: 'true', tags: ['paid', 'vip'] });
    });

    it('maps a problem+json answer to an Error with detail, type and status', async () => {
      await assert.rejects(appTester(tag, bundle({ media_id: 'med_00000000000000000000000000', add: ['x'] })), (err) => {
        const e = appError(err);
        assert.equal(e.status, 404);
        assert.equal(e.code, 'urn:chatvault:problem:not_found');
        assert.match(e.message, /chatvault request ID \w+/);
        return true;
      });
    });

    it("finds a customer's media newest first, page by page", async () => {
      const pager = `cust_${run}`;
      const ids = [];
      for (let i = 1; i <= 3; i++) {
        const m = await appTester(
          archive,
          bundle({ customer_id: pager, source_type: 'url', url: media.url(`/voice/page${i}-${run}.ogg`), timestamp: `2024-11-2${i}T10:00:00Z`, tags: i === 2 ? ['second'] : [] }),
        );
        ids.push(m.id);
      }
      await appTester(archive, bundle({ customer_id: pager, source_type: 'url', url: media.url(`/doc/page4-${run}.pdf`), timestamp: '2024-11-20T10:00:00Z' }));

      const first = await appTester(search, bundle({ customer_id: pager, kind: 'audio', limit: 2 }));
      assert.deepEqual(first.results.map((m) => m.id), [ids[2], ids[1]]);
      assert.equal(typeof first.paging_token, 'string');
      const second = await appTester(search, bundle({ customer_id: pager, kind: 'audio', limit: 2 }, { meta: { paging_token: first.paging_token } }));
      assert.deepEqual(second.results.map((m) => m.id), [ids[0]]);
      assert.equal(second.paging_token, null);
      // Only a page number: the cursors are walked.
      const byPage = await appTester(search, bundle({ customer_id: pager, kind: 'audio', limit: 2 }, { meta: { page: 1 } }));
      assert.deepEqual(byPage.results.map((m) => m.id), [ids[0]]);
      const beyond = await appTester(search, bundle({ customer_id: pager, kind: 'audio', limit: 2 }, { meta: { page: 5 } }));
      assert.deepEqual(beyond, { results: [], paging_token: null });

      const all = await appTester(search, bundle({ customer_id: pager }));
      assert.equal(all.results.length, 4);
      const byTag = await appTester(search, bundle({ customer_id: pager, tag: 'second' }));
      assert.deepEqual(byTag.results.map((m) => m.id), [ids[1]]);
      const none = await appTester(search, bundle({ customer_id: `nobody_${run}` }));
      assert.deepEqual(none, { results: [], paging_token: null });
    });

    it('orders by received-at and finds media in a received-at window (since inclusive, until exclusive)', async () => {
      // The message timestamps are days apart while the archive times are
      // seconds apart, so only a window on source.received_at (the contract)
      // picks exactly the middle record.
      const pager = `cust_${run}`;
      const all = await appTester(search, bundle({ customer_id: pager, kind: 'audio' }));
      const middle = all.results.find((m) => m.source.received_at === '2024-11-22T10:00:00Z');
      assert.ok(middle, 'the middle record exists');
      const window = await appTester(search, bundle({ customer_id: pager, since: '2024-11-22T00:00:00Z', until: '2024-11-23T00:00:00Z' }));
      assert.deepEqual(window.results.map((m) => m.id), [middle.id]);
      // The PDF was archived last but received first (2024-11-20): it comes last.
      const everything = await appTester(search, bundle({ customer_id: pager }));
      assert.deepEqual(everything.results.map((m) => m.source.received_at), [
        '2024-11-23T10:00:00Z',
        '2024-11-22T10:00:00Z',
        '2024-11-21T10:00:00Z',
        '2024-11-20T10:00:00Z',
      ]);
      const sinceOnly = await appTester(search, bundle({ customer_id: pager, kind: 'audio', since: '2024-11-22T10:00:00Z' }));
      assert.deepEqual(sinceOnly.results.map((m) => m.source.received_at), ['2024-11-23T10:00:00Z', '2024-11-22T10:00:00Z']);
    });

    it('lists tags for the dropdowns', async () => {
      const tags = await appTester(listTags, bundle());
      const vip = tags.find((t) => t.id === 'vip');
      assert.ok(vip, `vip among ${JSON.stringify(tags)}`);
      assert.equal(vip.count, 1);
      assert.equal(vip.label, 'vip (1)');
      assert.ok(tags.some((t) => t.id === 'voice-note'));
    });
  });

  describe('New Media Archived (REST hook)', () => {
    const customer = `cust_hook_${run}`;
    let subscription;
    let archived;

    it('subscribes with the target URL and filters', async () => {
      subscription = await appTester(hook.performSubscribe, bundle({ customer_id: customer }, { targetUrl: receiver.url('/hooks/zap-1') }));
      assert.match(subscription.id, /^hook_/);
      assert.match(subscription.secret, /^whsec_/);
      assert.equal(subscription.url, receiver.url('/hooks/zap-1'));
      assert.deepEqual(subscription.events, ['media.archived']);
      assert.equal(subscription.filters.customer_id, customer);
    });

    it('receives a signed delivery of a new archive and turns it into the Media record', async () => {
      assert.ok(subscription, 'subscribed (previous test)');
      const other = await appTester(archive, bundle({ customer_id: `other_${run}`, source_type: 'url', url: media.url(`/doc/other-${run}.pdf`) }));
      archived = await appTester(archive, bundle({ customer_id: customer, source_type: 'url', url: media.url(`/voice/hook-${run}.ogg`), tags: ['hooked'] }));

      const delivery = await receiver.waitFor((d) => d.path === '/hooks/zap-1' && d.rawBody.includes(archived.id));
      assert.equal(delivery.method, 'POST');
      assert.match(delivery.headers['content-type'], /^application\/json/);
      assert.equal(delivery.headers['chatvault-event-type'], 'media.archived');
      assert.equal(delivery.headers['user-agent'], 'chatvault-webhooks/1');
      const event = JSON.parse(delivery.rawBody);
      assert.equal(delivery.headers['chatvault-event-id'], event.id);
      assert.match(event.id, /^evt_/);
      assert.equal(event.type, 'media.archived');
      assert.ok(
        checkSignature(subscription.secret, delivery.headers['chatvault-signature'], delivery.rawBody, delivery.receivedAt),
        `valid Chatvault-Signature: ${delivery.headers['chatvault-signature']}`,
      );

      // What Zapier hands to perform: the parsed body, the raw request (its
      // headers prefixed "Http-") and the subscription.
      const rawRequest = {
        method: 'POST',
        headers: {
          'Http-Content-Type': delivery.headers['content-type'],
          'Http-Chatvault-Signature': delivery.headers['chatvault-signature'],
          'Http-Chatvault-Event-Id': delivery.headers['chatvault-event-id'],
        },
        content: delivery.rawBody,
      };
      const results = await appTester(hook.perform, bundle({ customer_id: customer }, { cleanedRequest: event, rawRequest, subscribeData: subscription }));
      assert.equal(results.length, 1);
      assert.equal(results[0].id, archived.id);
      assert.equal(results[0].customer_id, customer);
      assert.deepEqual(results[0].tags, ['hooked']);
      assert.equal(results[0].crm_fields.tags, 'hooked');
      assert.ok(results[0].crm_fields.url.startsWith('http'));

      // A forged body is refused.
      const forged = { ...rawRequest, content: delivery.rawBody.replace(customer, 'someone_else') };
      await assert.rejects(
        appTester(hook.perform, bundle({}, { cleanedRequest: JSON.parse(forged.content), rawRequest: forged, subscribeData: subscription })),
        (err) => err.name === 'HaltedError' && /signature does not match/.test(err.message),
      );

      // The filter kept the other customer's archive away from this Zap.
      await servers.sleep(1000);
      assert.ok(!receiver.deliveries.some((d) => d.path === '/hooks/zap-1' && d.rawBody.includes(other.id)), 'no delivery for another customer');
    });

    it('fires for an asynchronous archive too (Prefer: respond-async, docs/ZAPIER.md)', async () => {
      assert.ok(subscription, 'subscribed (earlier test)');
      const res = await fetch(`${cv.baseUrl}/v1/media`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${cv.apiKey}`, 'Content-Type': 'application/json', Prefer: 'respond-async' },
        body: JSON.stringify({ customer_id: customer, source: { type: 'url', url: media.url(`/voice/async-${run}.ogg`) } }),
      });
      assert.equal(res.status, 202);
      const delivery = await receiver.waitFor((d) => d.path === '/hooks/zap-1' && d.rawBody.includes(`async-${run}.ogg`));
      const event = JSON.parse(delivery.rawBody);
      const rawRequest = { headers: { 'Http-Chatvault-Signature': delivery.headers['chatvault-signature'] }, content: delivery.rawBody };
      const [m] = await appTester(hook.perform, bundle({}, { cleanedRequest: event, rawRequest, subscribeData: subscription }));
      assert.equal(m.kind, 'audio');
      assert.equal(m.customer_id, customer);
    });

    it('lists recent archives from the events feed for samples', async () => {
      const listedCustomer = `cust_list_${run}`;
      const older = await appTester(archive, bundle({ customer_id: listedCustomer, source_type: 'url', url: media.url(`/voice/list1-${run}.ogg`) }));
      const newer = await appTester(archive, bundle({ customer_id: listedCustomer, source_type: 'url', url: media.url(`/doc/list2-${run}.pdf`) }));
      // The same source again is a dedupe hit, which is no new event.
      await appTester(archive, bundle({ customer_id: listedCustomer, source_type: 'url', url: media.url(`/doc/list2-${run}.pdf`), caption: 'again' }));

      const listed = await appTester(hook.performList, bundle({ customer_id: listedCustomer }, { meta: { limit: 5 } }));
      assert.deepEqual(listed.map((m) => m.id), [newer.id, older.id], 'newest first, once each');
      assert.equal(listed[0].crm_fields.media_id, newer.id);
      assert.equal(listed[0].customer_id, listedCustomer);

      const limited = await appTester(hook.performList, bundle({}, { meta: { limit: 3 } }));
      assert.equal(limited.length, 3);
      assert.equal(limited[0].id, newer.id, 'newest first');
      const audio = await appTester(hook.performList, bundle({ kind: 'audio', customer_id: listedCustomer }, { meta: { limit: 50 } }));
      assert.deepEqual(audio.map((m) => m.id), [older.id]);
    });

    it('unsubscribes, after which no delivery arrives', async () => {
      assert.ok(subscription, 'subscribed (earlier test)');
      const res = await appTester(hook.performUnsubscribe, bundle({}, { subscribeData: subscription }));
      assert.deepEqual(res, { id: subscription.id, deleted: true });
      const list = await fetch(`${cv.baseUrl}/v1/hooks`, { headers: { Authorization: `Bearer ${cv.apiKey}` } }).then((r) => r.json());
      assert.ok(!list.data.some((h) => h.id === subscription.id));
      // Unsubscribing a hook that is already gone is not an error.
      assert.deepEqual(await appTester(hook.performUnsubscribe, bundle({}, { subscribeData: subscription })), { id: subscription.id, deleted: true });

      const before = receiver.deliveries.length;
      await appTester(archive, bundle({ customer_id: customer, source_type: 'url', url: media.url(`/doc/after-${run}.pdf`) }));
      await servers.sleep(2000);
      assert.equal(receiver.deliveries.filter((d) => d.path === '/hooks/zap-1').length, receiver.deliveries.slice(0, before).filter((d) => d.path === '/hooks/zap-1').length);
    });
  });

  // Processing needs ffmpeg; without it chatvault runs with processing off.
  // scripts/test.sh installs ffmpeg, so under CI its absence fails the test.
  const noFFmpeg = !servers.haveFFmpeg() && !process.env.CI && 'ffmpeg is not installed (scripts/install-ffmpeg.sh)';

  describe('Media Processed (REST hook)', { skip: noFFmpeg }, () => {
    const customer = `cust_proc_${run}`;
    const hookPath = '/hooks/zap-processed';
    let subscription;
    let voice;
    let broken;

    // delivered waits for the media.processed delivery of a record and runs
    // the trigger's perform on it with the given inputs.
    const delivered = async (id) => {
      const d = await receiver.waitFor((x) => x.path === hookPath && x.rawBody.includes(id), 120000);
      assert.equal(d.headers['chatvault-event-type'], 'media.processed');
      assert.ok(checkSignature(subscription.secret, d.headers['chatvault-signature'], d.rawBody, d.receivedAt), 'signed');
      const event = JSON.parse(d.rawBody);
      const rawRequest = { headers: { 'Http-Chatvault-Signature': d.headers['chatvault-signature'] }, content: d.rawBody };
      return (inputData) => appTester(processedHook.perform, bundle(inputData, { cleanedRequest: event, rawRequest, subscribeData: subscription }));
    };

    it('subscribes to media.processed with the filters', async () => {
      subscription = await appTester(processedHook.performSubscribe, bundle({ customer_id: customer, kind: 'audio', state: 'done' }, { targetUrl: receiver.url(hookPath) }));
      assert.match(subscription.id, /^hook_/);
      assert.deepEqual(subscription.events, ['media.processed']);
      assert.equal(subscription.filters.customer_id, customer);
      assert.equal(subscription.filters.kind, 'audio');
    });

    it('fires once a voice note has its playable MP3, with duration and renditions', async () => {
      assert.ok(subscription, 'subscribed (previous test)');
      media.serve(`/real/voice-${run}.ogg`, servers.voiceNote(tmpDir), 'audio/ogg');
      const archived = await appTester(archive, bundle({ customer_id: customer, source_type: 'url', url: media.url(`/real/voice-${run}.ogg`) }));
      assert.equal(archived.processing.state, 'pending', 'processing follows the archive');
      assert.equal(archived.crm_fields.playable_url, '', 'no playable URL before processing');

      const perform = await delivered(archived.id);
      const results = await perform({ customer_id: customer, state: 'done' });
      assert.equal(results.length, 1);
      voice = results[0];
      assert.equal(voice.id, archived.id);
      assert.equal(voice.processing.state, 'done');
      assert.deepEqual(voice.processing.failures, []);
      assert.equal(voice.audio_codec, 'opus');
      assert.ok(Math.abs(voice.duration_ms - 3000) <= 100, `duration_ms ${voice.duration_ms}`);
      assert.equal(voice.crm_fields.duration, '3.0');
      assert.deepEqual(voice.renditions.map((r) => [r.name, r.mime_type]), [['mp3', 'audio/mpeg']]);
      assert.match(voice.crm_fields.playable_url, /[?&]rendition=mp3(&|$)/);

      // What the CRM does with the link: play it, without a key.
      const got = await fetch(voice.crm_fields.playable_url);
      assert.equal(got.status, 200);
      assert.equal(got.headers.get('content-type'), 'audio/mpeg');
      const mp3 = Buffer.from(await got.arrayBuffer());
      assert.equal(crypto.createHash('sha256').update(mp3).digest('hex'), voice.renditions[0].sha256);

      // The Outcome input: "Failed" drops it, "Done or failed" keeps it.
      assert.deepEqual(await perform({ state: 'failed' }), []);
      assert.equal((await perform({ state: 'any' })).length, 1);
      assert.equal((await perform({})).length, 1, 'Done is the default');
    });

    it('reports media that cannot be processed only when the Zap asks for failures', async () => {
      assert.ok(subscription, 'subscribed (earlier test)');
      // Only the first bytes of this stand-in are Ogg/Opus: ffprobe refuses it.
      broken = await appTester(archive, bundle({ customer_id: customer, source_type: 'url', url: media.url(`/voice/broken-${run}.ogg`) }));
      const perform = await delivered(broken.id);
      assert.deepEqual(await perform({ state: 'done' }), []);
      const [failed] = await perform({ state: 'failed' });
      assert.equal(failed.id, broken.id);
      assert.equal(failed.processing.state, 'failed');
      assert.ok(failed.processing.failures.length >= 1);
      assert.match(failed.processing.failures[0].error.type, /^urn:chatvault:problem:/);
      assert.deepEqual(failed.renditions, []);
      assert.equal(failed.crm_fields.playable_url, '');
    });

    it('lists processed media from the events feed for samples, by outcome', async () => {
      assert.ok(voice && broken, 'processed (earlier tests)');
      const list = (state) => appTester(processedHook.performList, bundle({ customer_id: customer, state }, { meta: { limit: 10 } }));
      assert.deepEqual((await list('done')).map((m) => m.id), [voice.id]);
      assert.deepEqual((await list('failed')).map((m) => m.id), [broken.id]);
      assert.deepEqual((await list('any')).map((m) => m.id), [broken.id, voice.id], 'newest first');
    });

    it('ignores a delivery of another event type and unsubscribes', async () => {
      assert.ok(subscription, 'subscribed (earlier test)');
      const archivedEvent = { id: 'evt_x', type: 'media.archived', created_at: '2024-11-25T10:15:32.418Z', data: { media: voice } };
      assert.deepEqual(await appTester(processedHook.perform, bundle({ state: 'any' }, { cleanedRequest: archivedEvent })), []);
      const res = await appTester(processedHook.performUnsubscribe, bundle({}, { subscribeData: subscription }));
      assert.deepEqual(res, { id: subscription.id, deleted: true });
    });
  });

  describe('limits and scopes (a second chatvault)', () => {
    let limited;
    const readonlyKey = `cvtest_ro_${crypto.randomBytes(12).toString('hex')}`;

    before(async () => {
      const { stdout } = await promisify(execFile)(bin, ['hash-key', readonlyKey]);
      const config = path.join(tmpDir, 'tenants.yaml');
      fs.writeFileSync(
        config,
        `tenants:\n  - id: acme\n    name: ACME\n    api_keys:\n      - id: crm-readonly\n        hash: ${stdout.trim()}\n        scopes: [media:read]\n`,
      );
      limited = await servers.startChatvault({
        bin,
        tmpDir,
        allowlist: [media.host],
        extraEnv: { CHATVAULT_CONFIG: config, CHATVAULT_RATE_KEY: '3/1h', CHATVAULT_RATE_KEY_BURST: '3' },
      });
    });

    after(async () => {
      await limited?.stop();
    });

    it('labels a tenant-file key and refuses what its scopes do not allow', async () => {
      const ro = { base_url: limited.baseUrl, api_key: readonlyKey };
      const me = await appTester(auth.test, { authData: ro });
      assert.equal(renderLabel(auth.connectionLabel, ro, me), 'acme (crm-readonly)');
      await assert.rejects(
        appTester(archive, { authData: ro, inputData: { customer_id: 'c1', source_type: 'url', url: media.url(`/doc/ro-${run}.pdf`) } }),
        (err) => {
          const e = appError(err);
          assert.equal(e.status, 403);
          assert.match(e.message, /not allowed.*media:write/);
          return true;
        },
      );
    });

    it('turns 429 into a ThrottledError that waits for Retry-After', async () => {
      const b = { authData: { base_url: limited.baseUrl, api_key: limited.apiKey }, inputData: { customer_id: 'c1' }, meta: {} };
      let throttled = null;
      for (let i = 0; i < 6 && !throttled; i++) {
        try {
          await appTester(search, b);
        } catch (err) {
          throttled = err;
        }
      }
      assert.ok(throttled, 'a request was throttled');
      assert.equal(throttled.name, 'ThrottledError');
      const { message, delay } = JSON.parse(throttled.message);
      assert.ok(Number.isInteger(delay) && delay > 0 && delay <= 3600, `delay ${delay}`);
      assert.match(message, /chatvault request ID/);
    });
  });
});
