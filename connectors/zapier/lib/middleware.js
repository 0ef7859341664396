'use strict';

const { baseUrl } = require('./util');

const ABSOLUTE = /^[a-z][a-z0-9+.-]*:\/\//i;

const header = (headers, name) => {
  const wanted = name.toLowerCase();
  for (const k of Object.keys(headers || {})) {
    if (k.toLowerCase() === wanted) {
      return headers[k];
    }
  }
  return undefined;
};

const originOf = (url) => {
  try {
    return new URL(url).origin;
  } catch (_e) {
    return null;
  }
};

// resolveAndAuthorize resolves a path ("/v1/media") against the connection's
// base URL and adds the API key, but only to requests to that same origin, so
// a request elsewhere (a download of a signed URL) never carries the key.
const resolveAndAuthorize = (request, z, bundle) => {
  const authData = (bundle && bundle.authData) || {};
  const base = baseUrl(authData);
  if (request.url && !ABSOLUTE.test(request.url)) {
    if (!base) {
      throw new z.errors.Error(
        'The chatvault connection has no Base URL. Reconnect chatvault and enter the URL of your chatvault service, for example https://chatvault.example.com.',
        'missing_base_url',
        400,
      );
    }
    request.url = base + (request.url.startsWith('/') ? '' : '/') + request.url;
  }
  request.headers = request.headers || {};
  const key = String(authData.api_key || '').trim();
  if (key && base && originOf(request.url) === originOf(base) && !header(request.headers, 'Authorization')) {
    request.headers.Authorization = `Bearer ${key}`;
  }
  if (!header(request.headers, 'Accept')) {
    request.headers.Accept = 'application/json';
  }
  return request;
};

// problemOf returns the problem+json body of an error response, if it is one.
const problemOf = (response) => {
  let body = response.data;
  if (body === undefined) {
    try {
      body = JSON.parse(response.content);
    } catch (_e) {
      body = undefined;
    }
  }
  if (body && typeof body === 'object' && !Array.isArray(body) && (body.detail !== undefined || body.title !== undefined || body.type !== undefined)) {
    return body;
  }
  return null;
};

const responseHeader = (response, name) => {
  if (response.headers && typeof response.headers.get === 'function') {
    return response.headers.get(name);
  }
  return header(response.headers, name) || null;
};

// retryAfterSeconds reads Retry-After (seconds, or an HTTP date), falling back
// to the t= of the RateLimit header and then to a minute.
const retryAfterSeconds = (response) => {
  const ra = responseHeader(response, 'retry-after');
  if (ra) {
    if (/^\s*\d+\s*$/.test(ra)) {
      return Math.max(1, parseInt(ra, 10));
    }
    const at = Date.parse(ra);
    if (!Number.isNaN(at)) {
      return Math.max(1, Math.ceil((at - Date.now()) / 1000));
    }
  }
  const rl = responseHeader(response, 'ratelimit');
  if (rl) {
    const m = /;\s*t=(\d+)/.exec(rl);
    if (m) {
      return Math.max(1, parseInt(m[1], 10));
    }
  }
  return 60;
};

const withRequestId = (message, problem, response) => {
  const id = (problem && problem.request_id) || responseHeader(response, 'x-request-id');
  return id ? `${message} (chatvault request ID ${id})` : message;
};

// mapErrors turns chatvault's error answers into errors Zapier understands:
// 429 into a ThrottledError that reschedules the step after Retry-After,
// 401/403 into errors that name the API key, and every other problem+json
// into an Error with its detail, type and status. A request made with
// skipThrowForStatus handles its own statuses (performUnsubscribe).
const mapErrors = (response, z) => {
  if (response.status < 400 || response.skipThrowForStatus) {
    return response;
  }
  return raiseFor(response, z);
};

// raiseFor throws the error mapErrors would throw for an error response,
// whether or not the request asked to skip throwing.
const raiseFor = (response, z) => {
  const problem = problemOf(response);
  const detail = (problem && (problem.detail || problem.title)) || '';
  const type = (problem && problem.type) || `http_${response.status}`;
  const request = response.request || {};

  if (response.status === 429) {
    throw new z.errors.ThrottledError(
      withRequestId(detail || 'chatvault rate limit reached; Zapier will retry this step', problem, response),
      retryAfterSeconds(response),
    );
  }
  if (response.status === 401) {
    throw new z.errors.Error(
      withRequestId(
        `chatvault did not accept the API key${detail ? `: ${detail}` : ''}. Reconnect your chatvault account with a valid API key.`,
        problem,
        response,
      ),
      type,
      401,
    );
  }
  if (response.status === 403) {
    throw new z.errors.Error(
      withRequestId(
        `The chatvault API key is not allowed to do this${detail ? `: ${detail}` : ''}. Use a key with the scopes media:write, media:read, media:tag and hooks:manage.`,
        problem,
        response,
      ),
      type,
      403,
    );
  }
  if (response.status === 409 && header(request.headers, 'Idempotency-Key')) {
    // The same step is still running at chatvault (a replay raced the first
    // run): try again shortly and get the first run's answer.
    throw new z.errors.ThrottledError(
      withRequestId(detail || 'The same request is still running at chatvault', problem, response),
      10,
    );
  }
  if (problem) {
    throw new z.errors.Error(withRequestId(detail || `chatvault answered ${response.status}`, problem, response), type, response.status);
  }
  let snippet = '';
  try {
    snippet = String(response.content || '').slice(0, 200).trim();
  } catch (_e) {
    snippet = '';
  }
  throw new z.errors.Error(
    withRequestId(`chatvault answered HTTP ${response.status}${snippet ? `: ${snippet}` : ''}`, null, response),
    type,
    response.status,
  );
};

module.exports = {
  resolveAndAuthorize,
  mapErrors,
  raiseFor,
  header,
  retryAfterSeconds,
  problemOf,
};
