'use strict';

// The REST hook triggers (New Media Archived, Media Processed) share one
// pattern: subscribe a chatvault hook (POST /v1/hooks) to one event type with
// the trigger's filters, check the signature of every delivery, hand the
// event's Media record to the Zap, and read the polling feed (GET /v1/events)
// for samples.

const crypto = require('crypto');

const { raiseFor, header } = require('./middleware');
const { compact, str } = require('./util');

// Zapier normally runs perform seconds after a delivery arrives; a signature
// older than this is refused as a replay.
const SIGNATURE_TOLERANCE_SECONDS = 30 * 60;

// filtersOf is the subscription's (and the feed's) filters: chatvault applies
// them before delivering, so a Zap never sees what they exclude.
const filtersOf = (input) =>
  compact({
    customer_id: str(input.customer_id),
    kind: str(input.kind),
    tag: str(input.tag),
  });

// verifySignature checks Chatvault-Signature (t=<unix>,v1=<hex HMAC-SHA256 of
// "<t>.<raw body>">, docs/EVENTS.md) with the subscription's secret. Zapier
// passes request headers with an "Http-" prefix.
const verifySignature = (secret, rawRequest, nowSeconds = Math.floor(Date.now() / 1000)) => {
  const headers = (rawRequest && rawRequest.headers) || {};
  const value = header(headers, 'Http-Chatvault-Signature') || header(headers, 'Chatvault-Signature');
  if (!value) {
    return { ok: false, reason: 'the delivery has no Chatvault-Signature header' };
  }
  let t = null;
  const sigs = [];
  for (const part of String(value).split(',')) {
    const i = part.indexOf('=');
    if (i < 0) {
      continue;
    }
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    if (k === 't' && /^\d+$/.test(v)) {
      t = parseInt(v, 10);
    } else if (k === 'v1' && /^[0-9a-f]{64}$/i.test(v)) {
      sigs.push(Buffer.from(v, 'hex'));
    }
  }
  if (t === null || sigs.length === 0) {
    return { ok: false, reason: 'the Chatvault-Signature header is malformed' };
  }
  const content = typeof rawRequest.content === 'string' ? rawRequest.content : '';
  const expected = crypto.createHmac('sha256', secret).update(`${t}.${content}`).digest();
  if (!sigs.some((s) => s.length === expected.length && crypto.timingSafeEqual(s, expected))) {
    return { ok: false, reason: 'the signature does not match' };
  }
  if (Math.abs(nowSeconds - t) > SIGNATURE_TOLERANCE_SECONDS) {
    return { ok: false, reason: 'the signature is too old' };
  }
  return { ok: true };
};

// restHook returns the operation functions of a REST hook trigger on one
// event type. accept(media, inputData), when given, drops records the
// trigger's own inputs exclude (what chatvault's filters cannot express).
const restHook = ({ event, accept = () => true }) => {
  const performSubscribe = async (z, bundle) => {
    const body = { url: bundle.targetUrl, events: [event] };
    const filters = filtersOf(bundle.inputData || {});
    if (Object.keys(filters).length) {
      body.filters = filters;
    }
    // No Idempotency-Key: Zapier reuses a Zap's target URL when it is turned
    // off and on again, and a replayed answer would name the deleted hook.
    const response = await z.request({
      url: '/v1/hooks',
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body,
    });
    // Zapier keeps this as bundle.subscribeData: id to unsubscribe, secret to
    // check the signature of every delivery.
    return response.data;
  };

  const performUnsubscribe = async (z, bundle) => {
    const id = str(bundle.subscribeData && bundle.subscribeData.id);
    if (!id) {
      return {};
    }
    const response = await z.request({
      url: `/v1/hooks/${encodeURIComponent(id)}`,
      method: 'DELETE',
      skipThrowForStatus: true,
    });
    // 404 or 410: already gone (chatvault drops a subscription when a
    // delivery is answered 410, as Zapier does for a deleted Zap).
    if (response.status >= 400 && response.status !== 404 && response.status !== 410) {
      raiseFor(response, z);
    }
    return { id, deleted: true };
  };

  // perform turns one delivery (the event JSON, docs/EVENTS.md) into its
  // Media record.
  const perform = (z, bundle) => {
    const secret = bundle.subscribeData && bundle.subscribeData.secret;
    if (secret && bundle.rawRequest && typeof bundle.rawRequest.content === 'string') {
      const check = verifySignature(secret, bundle.rawRequest);
      if (!check.ok) {
        throw new z.errors.HaltedError(`Ignored a delivery that is not from chatvault: ${check.reason}.`);
      }
    }
    const delivered = bundle.cleanedRequest || {};
    if (delivered.type && delivered.type !== event) {
      return [];
    }
    const media = delivered.data && delivered.data.media;
    return media && media.id && accept(media, bundle.inputData || {}) ? [media] : [];
  };

  // performList reads the polling feed, so the Zap editor shows real records.
  const performList = async (z, bundle) => {
    const meta = bundle.meta || {};
    const input = bundle.inputData || {};
    const limit = meta.limit > 0 ? Math.min(meta.limit, 100) : 10;
    const response = await z.request({
      url: '/v1/events',
      method: 'GET',
      params: { type: event, limit, ...filtersOf(input) },
    });
    const events = (response.data && response.data.data) || [];
    return events
      .filter((e) => e && e.data && e.data.media && e.data.media.id && accept(e.data.media, input))
      .map((e) => ({ ...e.data.media, id: e.data.media.id }));
  };

  return { performSubscribe, performUnsubscribe, perform, performList };
};

module.exports = { restHook, verifySignature, filtersOf, SIGNATURE_TOLERANCE_SECONDS };
