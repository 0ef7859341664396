'use strict';

const samples = require('../lib/samples');
const { mediaOutputFields, customerIdField, kindField, tagField } = require('../lib/fields');
const { compact, str } = require('../lib/util');

const DEFAULT_LIMIT = 25;
const MAX_LIMIT = 200;

const pageLimit = (z, value) => {
  if (value === undefined || value === null || value === '') {
    return DEFAULT_LIMIT;
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) {
    throw new z.errors.Error(`Limit must be a whole number from 1 to ${MAX_LIMIT}.`, 'invalid_input', 400);
  }
  return n;
};

const fetchPage = async (z, customerId, params, cursor) => {
  const response = await z.request({
    url: `/v1/customers/${encodeURIComponent(customerId)}/media`,
    method: 'GET',
    params: compact({ ...params, cursor }),
  });
  const data = response.data || {};
  return { results: data.data || [], next: data.next_cursor || null };
};

// perform lists the customer's media, newest first. Zapier's search paging
// hands back the paging_token we returned (bundle.meta.paging_token); when
// only a page number comes (bundle.meta.page), the cursors are walked from
// the first page up to it.
const perform = async (z, bundle) => {
  const input = bundle.inputData || {};
  const meta = bundle.meta || {};
  const customerId = str(input.customer_id);
  if (!customerId) {
    throw new z.errors.Error('A Customer ID is required.', 'invalid_input', 400);
  }
  const params = compact({
    kind: str(input.kind),
    tag: str(input.tag),
    since: str(input.since),
    until: str(input.until),
    limit: pageLimit(z, input.limit),
  });

  let cursor = str(meta.paging_token);
  if (!cursor) {
    const page = Number(meta.page) || 0;
    for (let i = 0; i < page; i++) {
      const skipped = await fetchPage(z, customerId, params, cursor);
      if (!skipped.next) {
        return { results: [], paging_token: null };
      }
      cursor = skipped.next;
    }
  }
  const { results, next } = await fetchPage(z, customerId, params, cursor);
  return { results, paging_token: next };
};

module.exports = {
  key: 'find_customer_media',
  noun: 'Media',
  display: {
    label: 'Find Customer Media',
    description: "Finds a customer's archived media, newest first, optionally by kind, tag or time.",
  },
  operation: {
    inputFields: [
      customerIdField(true),
      kindField('Only media of this kind.'),
      tagField('tag', 'Tag', 'Only media with this tag.', false),
      {
        key: 'since',
        label: 'Received Since',
        type: 'datetime',
        required: false,
        helpText: 'Only media received at or after this time.',
      },
      {
        key: 'until',
        label: 'Received Before',
        type: 'datetime',
        required: false,
        helpText: 'Only media received before this time.',
      },
      {
        key: 'limit',
        label: 'Results per Page',
        type: 'integer',
        required: false,
        default: String(DEFAULT_LIMIT),
        helpText: `How many records one page holds (1 to ${MAX_LIMIT}). The first record is the newest.`,
      },
    ],
    perform,
    canPaginate: true,
    outputFields: mediaOutputFields,
    sample: samples.media,
  },
};
