'use strict';

// Custom authentication: the URL of the chatvault service and an API key.
// The test asks GET /v1/me, whose tenant_id and key_id label the connection.
const test = async (z) => {
  const response = await z.request({ url: '/v1/me', method: 'GET' });
  return response.data;
};

module.exports = {
  type: 'custom',
  fields: [
    {
      key: 'base_url',
      label: 'Base URL',
      type: 'string',
      required: true,
      placeholder: 'https://chatvault.example.com',
      helpText:
        'The address of your chatvault service, starting with `https://`, without a path (for example `https://chatvault.example.com`). Ask whoever runs chatvault for it.',
    },
    {
      key: 'api_key',
      label: 'API Key',
      type: 'password',
      required: true,
      helpText:
        'A chatvault API key for your tenant with the scopes `media:write`, `media:read`, `media:tag` and `hooks:manage`. `chatvault keygen` prints a new key and the hash to put in the tenants file.',
    },
  ],
  test,
  connectionLabel: '{{tenant_id}} ({{key_id}})',
};
