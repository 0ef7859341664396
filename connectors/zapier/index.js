'use strict';

const zapier = require('zapier-platform-core');

const authentication = require('./lib/authentication');
const { resolveAndAuthorize, mapErrors } = require('./lib/middleware');
const archiveMedia = require('./creates/archive_media');
const tagMedia = require('./creates/tag_media');
const findCustomerMedia = require('./searches/find_customer_media');
const newMediaArchived = require('./triggers/new_media_archived');
const mediaProcessed = require('./triggers/media_processed');
const listTags = require('./triggers/list_tags');

// Only the keys Zapier's app schema knows go into the definition.
const action = ({ key, noun, display, operation }) => ({ key, noun, display, operation });

module.exports = {
  version: require('./package.json').version,
  platformVersion: zapier.version,

  // Let afterResponse see 429s, to use chatvault's Retry-After and detail.
  flags: { throwForThrottlingEarly: false },

  authentication,
  beforeRequest: [resolveAndAuthorize],
  afterResponse: [mapErrors],

  triggers: {
    [newMediaArchived.key]: action(newMediaArchived),
    [mediaProcessed.key]: action(mediaProcessed),
    [listTags.key]: action(listTags),
  },
  searches: {
    [findCustomerMedia.key]: action(findCustomerMedia),
  },
  creates: {
    [archiveMedia.key]: action(archiveMedia),
    [tagMedia.key]: action(tagMedia),
  },
};
