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
  updated_at: '2024-11-25T10:15:41Z',
  content_url:
    'https://chatvault.example.com/v1/media/med_01JD8X3QK2V7M9TW4R6YB5N0CE/content?expires=1732533332&tenant=acme&signature=6be0dd8dcc2a9300e9b41219e6bab6906e09c7260ba814e68153c410d56453fc',
  content_url_expires_at: '2024-11-25T11:15:32Z',
  duration_ms: 308664,
  width: 0,
  height: 0,
  bit_rate: 31998,
  audio_codec: 'opus',
  video_codec: '',
  processing: {
    state: 'done',
    probe_error: '',
    failures: [],
    updated_at: '2024-11-25T10:15:41Z',
  },
  renditions: [
    {
      name: 'mp3',
      mime_type: 'audio/mpeg',
      size_bytes: 2469120,
      sha256: '4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce',
      duration_ms: 308664,
      width: 0,
      height: 0,
      content_url:
        'https://chatvault.example.com/v1/media/med_01JD8X3QK2V7M9TW4R6YB5N0CE/content?expires=1732533332&rendition=mp3&signature=2c624232cdd221771294dfbb310aca000a0df6ac8b66b696d90ef06fdefb64a3&tenant=acme',
    },
  ],
  original: {
    stored: true,
    replace_after: null,
    replace_reason: '',
    replaced_at: null,
    replaced_by: '',
  },
  crm_fields: {
    media_id: 'med_01JD8X3QK2V7M9TW4R6YB5N0CE',
    url: 'https://chatvault.example.com/v1/media/med_01JD8X3QK2V7M9TW4R6YB5N0CE/content?expires=1733137200&signature=645761ef0cb669e4c9879bb2dbb64c5fdd8de10211f307fd0d0366b6b96ceee5&tenant=acme',
    type: 'audio',
    mime_type: 'audio/ogg; codecs=opus',
    size: '1.2 MB',
    size_bytes: '1234567',
    sha256: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    filename: '',
    caption: '',
    duration: '308.7',
    width: '',
    height: '',
    playable_url:
      'https://chatvault.example.com/v1/media/med_01JD8X3QK2V7M9TW4R6YB5N0CE/content?expires=1733137200&rendition=mp3&signature=c7ef45afd6494bc8bb44b5274ce2e46d91eba5ad8b7136a693829bea4bbd5a59&tenant=acme',
    preview_url: '',
    received_at: '2024-11-25T10:15:30Z',
    tags: 'support',
  },
};

const tag = { id: 'support', tag: 'support', count: 12, label: 'support (12)' };

module.exports = { media, tag };
