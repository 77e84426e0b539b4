"""Who is asking, as the organisation's identity provider vouches for it: the IdP's JWT
access tokens and ID tokens verified against its published keys (`oidc`); the
authorization code flow with PKCE both sign-ins share (`code_flow`); the CLI's sign-in and
the tokens it keeps (`session`); the dashboard's sign-in and the server-side sessions of
signed-in browsers (`web_session`). Static tokens (`api.tokens`) stay for services,
gateways and sidecar OPAs."""
