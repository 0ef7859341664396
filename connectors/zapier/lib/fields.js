'use strict';

// Input and output field definitions shared by several actions.

const KINDS = ['audio', 'video', 'image', 'document', 'sticker'];

const kindChoices = {
  audio: 'Audio (voice notes included)',
  video: 'Video',
  image: 'Image',
  document: 'Document',
  sticker: 'Sticker',
};

// Zapier flattens nested objects with "__", so crm_fields.url becomes
// crm_fields__url in the editor, and shows arrays of objects as line items,
// keyed "renditions[]name"; the keys below follow those conventions.
const mediaOutputFields = [
  { key: 'id', label: 'Media ID', type: 'string', primary: true },
  { key: 'customer_id', label: 'Customer ID', type: 'string' },
  { key: 'kind', label: 'Kind', type: 'string' },
  { key: 'mime_type', label: 'MIME Type', type: 'string' },
  { key: 'size_bytes', label: 'Size (Bytes)', type: 'integer' },
  { key: 'sha256', label: 'SHA-256', type: 'string' },
  { key: 'filename', label: 'File Name', type: 'string' },
  { key: 'caption', label: 'Caption', type: 'string' },
  { key: 'tags', label: 'Tags', type: 'string', list: true },
  { key: 'metadata', label: 'Metadata' },
  { key: 'source__type', label: 'Source Type', type: 'string' },
  { key: 'source__media_id', label: 'Source Media ID', type: 'string' },
  { key: 'source__url', label: 'Source URL', type: 'string' },
  { key: 'source__message_id', label: 'Message ID', type: 'string' },
  { key: 'source__from', label: 'Sender', type: 'string' },
  { key: 'source__received_at', label: 'Received At', type: 'datetime' },
  { key: 'created_at', label: 'Archived At', type: 'datetime' },
  { key: 'updated_at', label: 'Updated At', type: 'datetime' },
  { key: 'content_url', label: 'Content URL (short-lived)', type: 'string' },
  { key: 'content_url_expires_at', label: 'Content URL Expires At', type: 'datetime' },
  { key: 'duration_ms', label: 'Duration (Milliseconds)', type: 'integer' },
  { key: 'width', label: 'Width (Pixels)', type: 'integer' },
  { key: 'height', label: 'Height (Pixels)', type: 'integer' },
  { key: 'bit_rate', label: 'Bit Rate (Bits per Second)', type: 'integer' },
  { key: 'audio_codec', label: 'Audio Codec', type: 'string' },
  { key: 'video_codec', label: 'Video Codec', type: 'string' },
  { key: 'processing__state', label: 'Processing State (pending, done, failed, skipped)', type: 'string' },
  { key: 'processing__probe_error', label: 'Processing Probe Error', type: 'string' },
  { key: 'processing__failures[]rendition', label: 'Processing Failure Rendition', type: 'string' },
  { key: 'processing__failures[]error__type', label: 'Processing Failure Error Type', type: 'string' },
  { key: 'processing__failures[]error__status', label: 'Processing Failure Error Status', type: 'integer' },
  { key: 'processing__failures[]error__detail', label: 'Processing Failure Error Detail', type: 'string' },
  { key: 'processing__updated_at', label: 'Processing Updated At', type: 'datetime' },
  { key: 'renditions[]name', label: 'Rendition Name (mp3, m4a, mp4, poster, thumb)', type: 'string' },
  { key: 'renditions[]mime_type', label: 'Rendition MIME Type', type: 'string' },
  { key: 'renditions[]size_bytes', label: 'Rendition Size (Bytes)', type: 'integer' },
  { key: 'renditions[]sha256', label: 'Rendition SHA-256', type: 'string' },
  { key: 'renditions[]duration_ms', label: 'Rendition Duration (Milliseconds)', type: 'integer' },
  { key: 'renditions[]width', label: 'Rendition Width (Pixels)', type: 'integer' },
  { key: 'renditions[]height', label: 'Rendition Height (Pixels)', type: 'integer' },
  { key: 'renditions[]content_url', label: 'Rendition Content URL (short-lived)', type: 'string' },
  { key: 'original__stored', label: 'Original Stored', type: 'boolean' },
  { key: 'original__replace_after', label: 'Original Replace After', type: 'datetime' },
  { key: 'original__replace_reason', label: 'Original Replace Reason (age, oversize)', type: 'string' },
  { key: 'original__replaced_at', label: 'Original Replaced At', type: 'datetime' },
  { key: 'original__replaced_by', label: 'Original Replaced By (mp3, m4a, mp4)', type: 'string' },
  { key: 'crm_fields__media_id', label: 'CRM: Media ID', type: 'string' },
  { key: 'crm_fields__url', label: 'CRM: File URL (long-lived)', type: 'string' },
  { key: 'crm_fields__type', label: 'CRM: Type', type: 'string' },
  { key: 'crm_fields__mime_type', label: 'CRM: MIME Type', type: 'string' },
  { key: 'crm_fields__size', label: 'CRM: Size', type: 'string' },
  { key: 'crm_fields__size_bytes', label: 'CRM: Size (Bytes)', type: 'string' },
  { key: 'crm_fields__sha256', label: 'CRM: SHA-256', type: 'string' },
  { key: 'crm_fields__filename', label: 'CRM: File Name', type: 'string' },
  { key: 'crm_fields__caption', label: 'CRM: Caption', type: 'string' },
  { key: 'crm_fields__duration', label: 'CRM: Duration (Seconds)', type: 'string' },
  { key: 'crm_fields__width', label: 'CRM: Width (Pixels)', type: 'string' },
  { key: 'crm_fields__height', label: 'CRM: Height (Pixels)', type: 'string' },
  { key: 'crm_fields__playable_url', label: 'CRM: Playable URL (MP3/M4A/MP4, long-lived)', type: 'string' },
  { key: 'crm_fields__preview_url', label: 'CRM: Preview Image URL (long-lived)', type: 'string' },
  { key: 'crm_fields__received_at', label: 'CRM: Received At', type: 'string' },
  { key: 'crm_fields__tags', label: 'CRM: Tags (Comma-Separated)', type: 'string' },
];

const customerIdField = (required) => ({
  key: 'customer_id',
  label: 'Customer ID',
  type: 'string',
  required,
  helpText:
    'Your own ID of the customer (contact) the media belongs to, such as a CRM contact ID or `wa:` followed by the WhatsApp number. Letters, digits and `_ . : @ + -`, up to 128 characters.',
});

const kindField = (helpText) => ({
  key: 'kind',
  label: 'Kind',
  type: 'string',
  required: false,
  choices: kindChoices,
  helpText,
});

const tagField = (key, label, helpText, list) => ({
  key,
  label,
  type: 'string',
  required: false,
  list,
  dynamic: 'list_tags.id.label',
  helpText,
});

module.exports = {
  KINDS,
  kindChoices,
  mediaOutputFields,
  customerIdField,
  kindField,
  tagField,
};
