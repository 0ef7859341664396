'use strict';

const samples = require('../lib/samples');
const { mediaOutputFields, customerIdField, kindChoices, tagField } = require('../lib/fields');
const { restHook } = require('../lib/rest_hook');
const { str } = require('../lib/util');

// Processing probes audio, video and images and makes their renditions;
// documents and stickers are never processed, so never offered here.
const PROCESSED_KINDS = ['audio', 'video', 'image'];

const OUTCOMES = {
  done: 'Done: duration known, renditions ready',
  failed: 'Failed: the probe or a rendition failed',
  any: 'Done or failed',
};

// media.processed is raised for both outcomes (schemas/event-media-processed.json);
// chatvault's subscription filters cannot tell them apart, so the Zap's
// choice is applied here. A dropped delivery starts no Zap run.
const accept = (media, input) => {
  const want = str(input.state) || 'done';
  return want === 'any' || (media.processing && media.processing.state) === want;
};

module.exports = {
  key: 'media_processed',
  noun: 'Media',
  display: {
    label: 'Media Processed',
    description:
      'Triggers when chatvault has processed a voice note, video or image: its duration and dimensions are known, and its playable MP3/MP4 and preview picture are ready.',
  },
  operation: {
    type: 'hook',
    inputFields: [
      customerIdField(false),
      {
        key: 'kind',
        label: 'Kind',
        type: 'string',
        required: false,
        choices: Object.fromEntries(PROCESSED_KINDS.map((k) => [k, kindChoices[k]])),
        helpText: 'Only media of this kind. Documents and stickers are never processed.',
      },
      tagField('tag', 'Tag', 'Only media carrying this tag when processing finishes.', false),
      {
        key: 'state',
        label: 'Outcome',
        type: 'string',
        required: true,
        default: 'done',
        choices: OUTCOMES,
        helpText:
          '**Done** (the usual choice): the media was probed and every rendition made, so **CRM: Playable URL** holds an MP3, M4A or MP4 every browser and CRM plays. **Failed**: the media could not be probed or a rendition not made (**Processing Failure** fields say why; the archived original is unaffected).',
      },
    ],
    ...restHook({ event: 'media.processed', accept }),
    outputFields: mediaOutputFields,
    sample: samples.media,
  },
  PROCESSED_KINDS,
  accept,
};
