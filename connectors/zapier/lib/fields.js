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
// crm_fields__url in the editor; the keys below follow that convention.
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
