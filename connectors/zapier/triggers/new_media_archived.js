'use strict';

const samples = require('../lib/samples');
const { mediaOutputFields, customerIdField, kindField, tagField } = require('../lib/fields');
const { restHook, verifySignature } = require('../lib/rest_hook');

module.exports = {
  key: 'new_media_archived',
  noun: 'Media',
  display: {
    label: 'New Media Archived',
    description:
      'Triggers instantly when chatvault archives a new WhatsApp voice note, video, image or document.',
  },
  operation: {
    type: 'hook',
    inputFields: [
      customerIdField(false),
      kindField('Only media of this kind.'),
      tagField('tag', 'Tag', 'Only media archived with this tag.', false),
    ],
    ...restHook({ event: 'media.archived' }),
    outputFields: mediaOutputFields,
    sample: samples.media,
  },
  verifySignature,
};
