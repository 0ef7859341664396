'use strict';

process.env.NODE_ENV = 'test';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { describe, it } = require('node:test');

const zapier = require('zapier-platform-core');
const { validateAppDefinition } = require('zapier-platform-schema');

const App = require('../index');
const samples = require('../lib/samples');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

// Functions are replaced by the "$func$…" placeholders the schema expects,
// as `zapier validate` does before validating.
const serialized = (app) =>
  JSON.parse(
    JSON.stringify(app, (_k, v) => (typeof v === 'function' ? `$func$${v.length}$f$` : v)),
  );

// flattenKeys names a sample's values the way Zapier does: nested objects
// with "__" (crm_fields__url), arrays of objects as line items with "[]"
// (renditions[]name). metadata is a map of the user's own keys.
const isObject = (v) => v && typeof v === 'object' && !Array.isArray(v);
const flattenKeys = (obj, prefix = '') =>
  Object.entries(obj).flatMap(([k, v]) => {
    if (isObject(v) && Object.keys(v).length && k !== 'metadata') {
      return flattenKeys(v, `${prefix}${k}__`);
    }
    if (Array.isArray(v) && v.length && v.every(isObject)) {
      return [...new Set(v.flatMap((item) => flattenKeys(item, `${prefix}${k}[]`)))];
    }
    return [`${prefix}${k}`];
  });

// An empty list (processing.failures in the sample) is covered by its line
// item fields.
const covers = (keys, k) => keys.has(k) || [...keys].some((key) => key.startsWith(`${k}[]`));

// schemaFields lists the fields of a JSON Schema the way flattenKeys names
// values, with each leaf's schema; $refs to sibling files are followed.
const readSchema = (file) => JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'schemas', file), 'utf8'));
const resolve = (s) => (s && typeof s.$ref === 'string' && !s.$ref.startsWith('#') ? resolve(readSchema(s.$ref)) : s);
const typesOf = (s) => [].concat(s.type || []);
const schemaFields = (schema, prefix = '') =>
  Object.entries(schema.properties || {}).flatMap(([k, raw]) => {
    const s = resolve(raw);
    if (typesOf(s).includes('object') && s.properties) {
      return schemaFields(s, `${prefix}${k}__`);
    }
    const items = typesOf(s).includes('array') && resolve(s.items);
    if (items && typesOf(items).includes('object') && items.properties) {
      return schemaFields(items, `${prefix}${k}[]`);
    }
    return [[`${prefix}${k}`, s]];
  });

// fits says whether an output field's Zapier type shows the schema's values.
const fits = (field, s) => {
  const ts = typesOf(s);
  switch (field.type) {
    case undefined:
      return true;
    case 'string':
      return field.list ? ts.includes('array') && typesOf(resolve(s.items)).includes('string') : ts.includes('string');
    case 'datetime':
      return ts.includes('string') && s.format === 'date-time';
    case 'integer':
      return ts.includes('integer');
    case 'number':
      return ts.includes('integer') || ts.includes('number');
    case 'boolean':
      return ts.includes('boolean');
    default:
      return false;
  }
};

describe('app definition', () => {
  it('passes zapier-platform-schema validateAppDefinition', () => {
    const result = validateAppDefinition(serialized(App));
    assert.deepEqual(result.errors.map((e) => e.stack), []);
  });

  it('passes the validate command of zapier-platform-core (what `zapier validate` runs)', async () => {
    const handler = zapier.createAppHandler(App);
    const { results } = await handler({ command: 'validate', bundle: {} });
    assert.deepEqual(results, []);
  });

  it('has the actions, auth and middleware the connector promises', () => {
    assert.deepEqual(Object.keys(App.triggers).sort(), ['list_tags', 'media_processed', 'new_media_archived']);
    assert.deepEqual(Object.keys(App.creates).sort(), ['archive_media', 'tag_media']);
    assert.deepEqual(Object.keys(App.searches), ['find_customer_media']);
    assert.equal(App.authentication.type, 'custom');
    assert.deepEqual(App.authentication.fields.map((f) => [f.key, f.type, f.required]), [
      ['base_url', 'string', true],
      ['api_key', 'password', true],
    ]);
    assert.equal(App.authentication.connectionLabel, '{{tenant_id}} ({{key_id}})');
    assert.equal(App.platformVersion, zapier.version);
    assert.match(zapier.version, /^19\./);
    assert.equal(App.triggers.new_media_archived.operation.type, 'hook');
    assert.equal(App.triggers.media_processed.operation.type, 'hook');
    assert.equal(App.searches.find_customer_media.operation.canPaginate, true);
    assert.equal(App.triggers.list_tags.display.hidden, true);
  });

  it('uses the Media example of schemas/media.json as the sample', () => {
    const schema = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'schemas', 'media.json'), 'utf8'));
    assert.deepEqual(samples.media, schema.examples[0]);
  });

  it('gives every visible action labelled outputFields covering its sample', () => {
    const actions = [
      ...Object.values(App.triggers),
      ...Object.values(App.searches),
      ...Object.values(App.creates),
    ];
    for (const action of actions) {
      const { outputFields, sample } = action.operation;
      assert.ok(sample, `${action.key} has a sample`);
      assert.ok(Array.isArray(outputFields) && outputFields.length, `${action.key} has outputFields`);
      for (const f of outputFields) {
        assert.ok(f.label, `${action.key}.${f.key} has a label`);
      }
      const keys = new Set(outputFields.map((f) => f.key));
      for (const k of flattenKeys(sample)) {
        assert.ok(covers(keys, k), `${action.key} outputFields cover sample key ${k}`);
      }
    }
  });

  it('describes every field of schemas/media.json, with fitting types, in the Media outputFields', () => {
    const { mediaOutputFields } = require('../lib/fields');
    const fields = new Map(schemaFields(readSchema('media.json')));
    const byKey = new Map(mediaOutputFields.map((f) => [f.key, f]));
    assert.equal(byKey.size, mediaOutputFields.length, 'no key twice');
    for (const [key, s] of fields) {
      const f = byKey.get(key);
      assert.ok(f, `an output field for ${key}`);
      assert.ok(fits(f, s), `${key} is ${f.type}${f.list ? ' (list)' : ''}, which does not fit the schema's ${JSON.stringify(s.type)} (format ${s.format})`);
    }
    for (const key of byKey.keys()) {
      assert.ok(fields.has(key), `output field ${key} is in schemas/media.json`);
    }
    const media = [...Object.values(App.triggers), ...Object.values(App.searches), ...Object.values(App.creates)].filter(
      (a) => a.noun === 'Media',
    );
    assert.deepEqual(media.map((a) => a.key).sort(), ['archive_media', 'find_customer_media', 'media_processed', 'new_media_archived', 'tag_media']);
    for (const action of media) {
      assert.equal(action.operation.outputFields, mediaOutputFields, `${action.key} outputs the Media fields`);
      assert.equal(action.operation.sample, samples.media, `${action.key} has the Media sample`);
    }
  });

  it('labels every input field and points the tag dropdowns at list_tags', () => {
    const withInputs = [...Object.values(App.triggers), ...Object.values(App.searches), ...Object.values(App.creates)];
    for (const action of withInputs) {
      for (const f of action.operation.inputFields || []) {
        assert.ok(f.label && f.helpText, `${action.key}.${f.key} has a label and help text`);
      }
    }
    const dynamic = withInputs.flatMap((a) => (a.operation.inputFields || []).filter((f) => f.dynamic).map((f) => `${a.key}.${f.key}`));
    assert.deepEqual(dynamic.sort(), [
      'archive_media.tags',
      'find_customer_media.tag',
      'media_processed.tag',
      'new_media_archived.tag',
      'tag_media.add',
      'tag_media.remove',
    ]);
  });
});
