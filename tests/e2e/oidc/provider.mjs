// A real OpenID provider for the tests (the `oidc-provider` package, with
// its development login and consent pages), on 127.0.0.1:PORT, with one
// confidential client whose redirect URI is REDIRECT. Two people exist:
// alice@example.test and mallory@elsewhere.test; any password signs in.
//   node provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT
import Provider from 'oidc-provider';

const [port, clientId, secret, redirect] = process.argv.slice(2);
const people = {
  alice: { sub: 'alice', email: 'alice@example.test', email_verified: true, name: 'Alice' },
  mallory: { sub: 'mallory', email: 'mallory@elsewhere.test', email_verified: true, name: 'Mallory' },
};
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    client_secret: secret,
    redirect_uris: [redirect],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  findAccount: async (ctx, id) => people[id] && { accountId: id, claims: async () => people[id] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
});
provider.listen(Number(port), '127.0.0.1', () => console.log('listening'));
