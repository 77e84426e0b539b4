"""DataVisa's engine: the grant lifecycle, its store, and the conversation with OPA."""

from typing import Any


def __getattr__(name: str) -> Any:
    # __version__ on first use: reading the installed metadata costs more than the rest of
    # a remote CLI call's imports.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    global __version__
    try:
        __version__ = version("datavisa")
    except PackageNotFoundError:  # running from a source tree that was never installed
        __version__ = "0+unknown"
    return __version__
