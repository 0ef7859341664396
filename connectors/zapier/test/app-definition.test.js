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

const flattenKeys = (obj, prefix = '') =>
  Object.entries(obj).flatMap(([k, v]) =>
    v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length && k !== 'metadata'
      ? flattenKeys(v, `${prefix}${k}__`)
      : [`${prefix}${k}`],
  );

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
    assert.deepEqual(Object.keys(App.triggers).sort(), ['list_tags', 'new_media_archived']);
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
        assert.ok(keys.has(k), `${action.key} outputFields cover sample key ${k}`);
      }
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
      'new_media_archived.tag',
      'tag_media.add',
      'tag_media.remove',
    ]);
  });
});
