"""The HTTP API and what runs it, at the top of the engine.

Holds the FastAPI app (`app`) and its routes by resource (`routes/`), what they depend
on (`deps`), the wire shapes (`schemas` for pydantic bodies and answers, `wire` for
records to JSON and back), the input rules beyond those shapes (`limits`: the bundle's
countries, free-form JSON's bounds), errors (`errors`), the ASGI middlewares in front of
the app (`fastlane` for the access check, `idempotency` for retries, sharing `asgi`),
bearer tokens (`tokens`), which operations each token role may call (`permissions`, the
table `rego/datavisa/api` decides), Prometheus metrics (`metrics`), the running service
(`service`) and `datavisa serve` itself (`serve`, configured by `config`), the remote
client the CLI uses against a server (`remote`), and the dashboard's files
(`dashboard/`).

May import: every other package of the engine. Nothing in the engine imports it. Its
modules stay light to import: FastAPI and uvicorn load only with `app`, `routes` and
`serve`, so the CLI's remote mode (`remote`, `wire`, `tokens`) starts fast.
"""
