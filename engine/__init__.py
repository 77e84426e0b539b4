"""DataVisa's engine: the grant lifecycle, its store, and the conversation with OPA."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("datavisa")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
