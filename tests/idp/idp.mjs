// An OpenID provider with the device authorization grant (RFC 8628) for the CLI's device
// sign-in test: node-oidc-provider (a certified implementation), its development
// interactions (any login name signs in as that person), JWT access tokens for the
// audience datavisa, on 127.0.0.1. Not part of DataVisa.
//   node idp.mjs PORT
import Provider from "oidc-provider";

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "datavisa-cli",
      token_endpoint_auth_method: "none",
      grant_types: ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
      response_types: [],
      redirect_uris: [],
    },
  ],
  cookies: { keys: ["test-only-cookie-key"] },
  features: {
    deviceFlow: { enabled: true },
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => "urn:datavisa",
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "openid offline_access",
        audience: "datavisa",
        accessTokenFormat: "jwt",
        accessTokenTTL: 300,
        jwt: { sign: { alg: "RS256" } },
      }),
    },
  },
  findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  issueRefreshToken: () => true,
  scopes: ["openid", "offline_access"],
});
provider.listen(port, "127.0.0.1", () => console.log(`listening ${issuer}`));
