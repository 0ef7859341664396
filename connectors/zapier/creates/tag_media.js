'use strict';

const samples = require('../lib/samples');
const { mediaOutputFields, tagField } = require('../lib/fields');
const { str, tagList, idempotencyKey } = require('../lib/util');

const tagBody = (z, input) => {
  const body = {};
  const add = tagList(input.add);
  const remove = tagList(input.remove);
  if (add.length) {
    body.add = add;
  }
  if (remove.length) {
    body.remove = remove;
  }
  if (!add.length && !remove.length) {
    throw new z.errors.Error('Give at least one tag to add or to remove.', 'invalid_input', 400);
  }
  return body;
};

const tagRequest = (z, bundle) => {
  const input = bundle.inputData || {};
  const mediaId = str(input.media_id);
  if (!mediaId) {
    throw new z.errors.Error('A Media ID is required.', 'invalid_input', 400);
  }
  const body = tagBody(z, input);
  return z.request({
    url: `/v1/media/${encodeURIComponent(mediaId)}/tags`,
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'Idempotency-Key': idempotencyKey('tag_media', { media_id: mediaId, body }),
    },
    body,
  });
};

const perform = async (z, bundle) => {
  const response = await tagRequest(z, bundle);
  return response.data;
};

module.exports = {
  key: 'tag_media',
  noun: 'Media',
  display: {
    label: 'Tag Media',
    description: 'Adds tags to, or removes tags from, an archived media record.',
  },
  operation: {
    inputFields: [
      {
        key: 'media_id',
        label: 'Media ID',
        type: 'string',
        required: true,
        search: 'find_customer_media.id',
        helpText: 'The chatvault media ID (`med_…`), for example from New Media Archived or Archive Media.',
      },
      tagField('add', 'Tags to Add', 'Tags to add. Tags are lower-cased; adding a tag the record has is fine.', true),
      tagField('remove', 'Tags to Remove', 'Tags to remove (removed first, then the additions apply).', true),
    ],
    perform,
    outputFields: mediaOutputFields,
    sample: samples.media,
  },
  tagBody,
  tagRequest,
};
