// panva's oidc-provider as the OpenID Provider of tests/integration/test_sso_oidc.py.
// Usage: node server.mjs <port> <cert.pem> <key.pem> <setup.json>
// setup.json: {"clients": [oidc-provider client metadata], "accounts": {"<sub>": {claims}}}.
// Serves https://127.0.0.1:<port> and prints "ready" once listening. Sign-in is
// devInteractions (any password; the login is the account id), so an HTTP client can drive it.
import fs from 'node:fs';
import https from 'node:https';
import Provider from 'oidc-provider';

const [port, certFile, keyFile, setupFile] = process.argv.slice(2);
// Read again for each account lookup, so a test can change a user's claims (a rename).
const readSetup = () => JSON.parse(fs.readFileSync(setupFile, 'utf8'));
const setup = readSetup();

const provider = new Provider(`https://127.0.0.1:${port}`, {
  clients: setup.clients,
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
  features: { devInteractions: { enabled: true } },
  // HS256 for the client whose ID tokens no key of the JWKS verifies.
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'HS256'] },
  cookies: { keys: ['dendrite-lite-tests'] },
  async findAccount(ctx, id) {
    const claims = readSetup().accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
});
// Quiet: the tests read what matters from HTTP answers.
provider.on('server_error', (ctx, err) => console.error('server_error', err));

https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) },
  provider.callback()).listen(Number(port), '127.0.0.1', () => console.log('ready'));
