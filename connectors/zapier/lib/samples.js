'use strict';

// The first example of schemas/media.json, kept here because the app is
// uploaded to Zapier on its own (test/app-definition.test.js checks that the
// two stay equal).
const media = {
  id: 'med_01JD8X3QK2V7M9TW4R6YB5N0CE',
  customer_id: 'cust_4821',
  kind: 'audio',
  mime_type: 'audio/ogg; codecs=opus',
  size_bytes: 1234567,
  sha256: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  filename: '',
  caption: '',
  tags: ['support'],
  metadata: { hubspot_deal_id: '90210' },
  source: {
    type: 'whatsapp_cloud',
    media_id: '1013859600285441',
    message_id: 'wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA',
    from: '15551234567',
    received_at: '2024-11-25T10:15:30Z',
  },
  created_at: '2024-11-25T10:15:32Z',
  updated_at: '2024-11-25T10:15:32Z',
  content_url:
    'https://chatvault.example.com/v1/media/med_01JD8X3QK2V7M9TW4R6YB5N0CE/content?expires=1732533332&tenant=acme&signature=6be0dd8dcc2a9300e9b41219e6bab6906e09c7260ba814e68153c410d56453fc',
  content_url_expires_at: '2024-11-25T11:15:32Z',
  crm_fields: {
    media_id: 'med_01JD8X3QK2V7M9TW4R6YB5N0CE',
    url: 'https://chatvault.example.com/v1/media/med_01JD8X3QK2V7M9TW4R6YB5N0CE/content?expires=1732533332&tenant=acme&signature=6be0dd8dcc2a9300e9b41219e6bab6906e09c7260ba814e68153c410d56453fc',
    type: 'audio',
    mime_type: 'audio/ogg; codecs=opus',
    size: '1.2 MB',
    size_bytes: '1234567',
    sha256: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    filename: '',
    caption: '',
    duration: '',
    received_at: '2024-11-25T10:15:30Z',
    tags: 'support',
  },
};

const tag = { id: 'support', tag: 'support', count: 12, label: 'support (12)' };

module.exports = { media, tag };
