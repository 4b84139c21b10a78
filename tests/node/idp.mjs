// A real OIDC provider (npm `oidc-provider`) for the end-to-end tests.
// Issues RS256-signed JWT access tokens via client credentials; each client
// is a test user whose email and groups become token claims.
//
// usage: node idp.mjs PORT   — prints "ready" when listening; runs until
// killed (the test harness stops it when the test process ends).
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'e2e-key-1', alg: 'RS256', use: 'sig' };

const users = {
  alice: { email: 'alice@example.com', groups: ['dev', 'etl'] },
  bob: { email: 'bob@example.com', groups: ['analyst'] },
  mallory: { email: 'mallory@example.com', groups: ['marketing'] },
  shortlived: { email: 'short@example.com', groups: ['dev'] },
  // Approvals: riley runs DDL and is also a DBA (must not approve her
  // own request); dana and erin approve.
  riley: { email: 'riley@example.com', groups: ['dev', 'dba'] },
  dana: { email: 'dana@example.com', groups: ['dba'] },
  erin: { email: 'erin@example.com', groups: ['dba'] },
  // The audit viewer: audrey audits.
  audrey: { email: 'audrey@example.com', groups: ['auditor'] },
};

const provider = new Provider(issuer, {
  clients: [
    ...Object.keys(users).map((id) => ({
      client_id: id,
      client_secret: `${id}-secret`,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    })),
    // `portcullis login`: a public native client with a loopback redirect
    // (any port, RFC 8252), refresh tokens and the device flow.
    {
      client_id: 'portcullis-cli',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
    // The gateway's audit viewer (any admin port on loopback).
    {
      client_id: 'portcullis-audit',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/audit/callback'],
    },
  ],
  jwks: { keys: [jwk] },
  // Approvers log in to the approvals web UI with the authorization code
  // flow (PKCE): the provider's own login form takes any password for the
  // users above; the web client registers itself (dynamic registration).
  findAccount: async (ctx, id) => ({
    accountId: id,
    async claims() {
      const u = users[id] || {};
      return { sub: id, email: u.email, groups: u.groups || [] };
    },
  }),
  claims: { openid: ['sub'], email: ['email'], groups: ['groups'] },
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    registration: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:portcullis:db',
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => ({
        scope: 'db',
        audience: resource,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  ttl: {
    ClientCredentials: (ctx, token, client) => (client.clientId === 'shortlived' ? 1 : 600),
    // Short enough that `portcullis token` has to refresh in the tests.
    AccessToken: 120,
  },
  // Client credentials: the client is the user; sign-in flows: the account.
  extraTokenClaims: (ctx, token) => {
    const id = token.accountId || token.clientId;
    const u = users[id];
    return u ? { email: u.email, groups: u.groups, preferred_username: id } : {};
  },
});

provider.listen(port, '127.0.0.1', () => console.log('ready'));
