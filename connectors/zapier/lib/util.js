'use strict';

const crypto = require('crypto');

// canonicalJSON serialises a value with object keys sorted at every level, so
// the same inputs always give the same bytes whatever order Zapier sent them in.
const canonicalJSON = (value) => {
  if (Array.isArray(value)) {
    return `[${value.map(canonicalJSON).join(',')}]`;
  }
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJSON(value[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
};

// idempotencyKey derives the Idempotency-Key of a POST from what it sends.
// Zapier's autoreplay (and a user's manual replay) re-runs a step hours later
// with the same inputs: the same key makes chatvault replay its first answer
// instead of doing the work twice. A different body gives a different key, so
// the service never sees one key with two bodies (422).
const idempotencyKey = (action, payload) =>
  `zapier-${action}-${crypto
    .createHash('sha256')
    .update(canonicalJSON({ action, payload }))
    .digest('hex')}`;

const isBlank = (v) =>
  v === undefined ||
  v === null ||
  (typeof v === 'string' && v.trim() === '') ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0);

// str trims a scalar input to a string, or undefined when empty.
const str = (v) => {
  if (v === undefined || v === null) {
    return undefined;
  }
  const s = String(v).trim();
  return s === '' ? undefined : s;
};

// compact drops blank values (undefined, null, "", [], {}) from a flat object.
const compact = (obj) => {
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    if (!isBlank(v)) {
      out[k] = v;
    }
  }
  return out;
};

// tagList turns a Zapier list input into tags. A mapped value often arrives as
// one comma-separated string ("invoice,vip"); chatvault refuses commas inside
// a tag, so splitting on them never changes a valid tag's meaning.
const tagList = (value) => {
  if (value === undefined || value === null || value === '') {
    return [];
  }
  const items = Array.isArray(value) ? value : [value];
  const tags = [];
  for (const item of items) {
    for (const part of String(item).split(',')) {
      const t = part.trim();
      if (t !== '' && !tags.includes(t)) {
        tags.push(t);
      }
    }
  }
  return tags;
};

// stringMap keeps the non-empty entries of a dict input as strings.
const stringMap = (value) => {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    return {};
  }
  const out = {};
  for (const [k, v] of Object.entries(value)) {
    const key = k.trim();
    if (key !== '' && v !== undefined && v !== null) {
      out[key] = typeof v === 'string' ? v : JSON.stringify(v);
    }
  }
  return out;
};

// baseUrl is the connection's chatvault URL without trailing slashes.
const baseUrl = (authData) =>
  String((authData && authData.base_url) || '')
    .trim()
    .replace(/\/+$/, '');

module.exports = {
  canonicalJSON,
  idempotencyKey,
  compact,
  str,
  tagList,
  stringMap,
  baseUrl,
};
