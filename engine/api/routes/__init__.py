"""The API's routes, one module (one FastAPI router) per resource.

Each module holds `router`; `datavisa.engine.api.app` includes them all. Routes reach the
running service through `deps` and may import anything below the API.
"""
