"""Who is asking, as the organisation's identity provider vouches for it: the IdP's JWT
access tokens verified against its published keys (`oidc`). Static tokens
(`api.tokens`) stay for services, gateways and sidecar OPAs."""
