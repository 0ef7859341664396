'use strict';

const samples = require('../lib/samples');

// A hidden trigger that feeds the tag dropdowns (GET /v1/tags, most used first).
const perform = async (z) => {
  const response = await z.request({ url: '/v1/tags', method: 'GET' });
  const data = (response.data && response.data.data) || [];
  return data.map((t) => ({
    id: t.tag,
    tag: t.tag,
    count: t.count,
    label: `${t.tag} (${t.count})`,
  }));
};

module.exports = {
  key: 'list_tags',
  noun: 'Tag',
  display: {
    label: 'List Tags',
    description: 'Lists the tags in use, for dropdowns.',
    hidden: true,
  },
  operation: {
    perform,
    outputFields: [
      { key: 'id', label: 'Tag', type: 'string' },
      { key: 'tag', label: 'Tag', type: 'string' },
      { key: 'count', label: 'Media with This Tag', type: 'integer' },
      { key: 'label', label: 'Label', type: 'string' },
    ],
    sample: samples.tag,
  },
};
