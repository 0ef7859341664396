'use strict';

const samples = require('../lib/samples');
const { mediaOutputFields, customerIdField, kindField, tagField } = require('../lib/fields');
const { compact, str, tagList, stringMap, idempotencyKey } = require('../lib/util');

// Zapier stops an action after 30 s; stopping the request a little earlier
// leaves room to report a clear error instead of a bare timeout. (An object,
// so tests can shorten it.)
const settings = { requestTimeoutMs: 25000 };

const SOURCE_TYPES = {
  url: 'URL (a file link chatvault can fetch)',
  whatsapp_cloud: 'WhatsApp Cloud API media ID',
  twilio: 'Twilio media URL',
  dialog360: '360dialog media ID',
};

const NEEDS_URL = new Set(['url', 'twilio']);

// archiveBody builds the POST /v1/media body (schemas/archive-request.json)
// from the step's inputs, leaving out what is empty.
const archiveBody = (z, input) => {
  const type = str(input.source_type) || 'url';
  if (!Object.prototype.hasOwnProperty.call(SOURCE_TYPES, type)) {
    throw new z.errors.Error(`Source Type must be one of ${Object.keys(SOURCE_TYPES).join(', ')}; got "${type}".`, 'invalid_input', 400);
  }
  const source = { type };
  if (NEEDS_URL.has(type)) {
    source.url = str(input.url);
    if (!source.url) {
      throw new z.errors.Error(`A ${type === 'url' ? 'file' : 'Twilio media'} URL is required when Source Type is ${type}.`, 'invalid_input', 400);
    }
  } else {
    source.media_id = str(input.media_id);
    if (!source.media_id) {
      throw new z.errors.Error(`A Media ID is required when Source Type is ${type}.`, 'invalid_input', 400);
    }
  }
  const filename = str(input.filename);
  if (filename) {
    source.filename = filename;
  }

  const message = compact({
    id: str(input.message_id),
    from: str(input.from),
    timestamp: str(input.timestamp),
    caption: typeof input.caption === 'string' && input.caption.trim() !== '' ? input.caption : undefined,
  });

  return compact({
    customer_id: str(input.customer_id),
    kind: str(input.kind),
    source,
    message,
    tags: tagList(input.tags),
    metadata: stringMap(input.metadata),
  });
};

// archiveRequest sends the archive and returns the whole response (tests read
// its Idempotent-Replayed header); perform returns the Media record.
const archiveRequest = (z, bundle) => {
  const body = archiveBody(z, bundle.inputData || {});
  return z.request({
    url: '/v1/media',
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'Idempotency-Key': idempotencyKey('archive_media', body),
    },
    body,
    timeout: settings.requestTimeoutMs,
  });
};

const isTimeout = (err) => err && (err.type === 'request-timeout' || (err.name === 'FetchError' && /timeout/i.test(err.message)));

const perform = async (z, bundle) => {
  let response;
  try {
    response = await archiveRequest(z, bundle);
  } catch (err) {
    if (isTimeout(err)) {
      throw new z.errors.Error(
        `chatvault did not finish the archive within ${Math.round(settings.requestTimeoutMs / 1000)} s, before Zapier's 30 s limit. Replaying this step is safe (it is idempotent). For large videos, let the provider webhook archive them and use the New Media Archived trigger instead.`,
        'timeout',
        504,
      );
    }
    throw err;
  }
  return response.data;
};

module.exports = {
  key: 'archive_media',
  noun: 'Media',
  display: {
    label: 'Archive Media',
    description:
      'Copies a WhatsApp voice note, video, image or document into your chatvault archive and returns its record with CRM-ready fields.',
  },
  operation: {
    inputFields: [
      customerIdField(true),
      {
        key: 'source_type',
        label: 'Source Type',
        type: 'string',
        required: true,
        default: 'url',
        choices: SOURCE_TYPES,
        helpText:
          'Where the file comes from. **URL** and **Twilio** need the URL field (Twilio: a `MediaUrl0` from the Twilio webhook); **WhatsApp Cloud API** and **360dialog** need the Media ID field from the provider webhook.',
      },
      {
        key: 'url',
        label: 'URL',
        type: 'string',
        required: false,
        helpText: 'For Source Type URL or Twilio: the file link (http or https).',
      },
      {
        key: 'media_id',
        label: 'Media ID',
        type: 'string',
        required: false,
        helpText: 'For Source Type WhatsApp Cloud API or 360dialog: the media ID from the message webhook.',
      },
      kindField(
        'Optional. When set, the file must really be of this kind (chatvault checks the bytes); leave empty to detect it. Stickers must be marked here.',
      ),
      tagField('tags', 'Tags', 'Optional tags for the record, for example `invoice`. Tags are lower-cased.', true),
      {
        key: 'caption',
        label: 'Caption',
        type: 'text',
        required: false,
        helpText: 'The message caption, kept with the record.',
      },
      {
        key: 'metadata',
        label: 'Metadata',
        dict: true,
        required: false,
        helpText:
          'Optional key/value pairs kept with the record, such as the CRM IDs a later step needs (`hubspot_deal_id`). At most 20 keys of letters, digits and `_ . -`.',
      },
      {
        key: 'message_id',
        label: 'Message ID',
        type: 'string',
        required: false,
        helpText: "The provider's message ID (`wamid.…` or Twilio's `MM…`).",
      },
      {
        key: 'from',
        label: 'From',
        type: 'string',
        required: false,
        helpText: 'The sender, usually the phone number in international format without `+`.',
      },
      {
        key: 'timestamp',
        label: 'Message Timestamp',
        type: 'string',
        required: false,
        helpText: 'When the message was received: a date-time like `2024-11-25T10:15:30Z` or unix seconds as WhatsApp sends them. Empty: the archive time.',
      },
      {
        key: 'filename',
        label: 'File Name',
        type: 'string',
        required: false,
        helpText: 'Optional original file name, used when the file is downloaded.',
      },
    ],
    perform,
    outputFields: mediaOutputFields,
    sample: samples.media,
  },
  archiveBody,
  archiveRequest,
  settings,
};
