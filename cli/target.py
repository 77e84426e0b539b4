"""Where a command's work happens: a local store and OPA, or a `datavisa serve` server.

Every lifecycle command takes the same options (--as, --db, --opa-url, --opa-token-file,
--server, --token)
and gets one `Target`; `target.engine()` yields a local Engine or a RemoteEngine, which have
the same methods, so the commands print the same thing either way.
"""

from __future__ import annotations

import functools
import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datavisa.engine.api.remote import SERVER_ENV, TOKEN_ENV, RemoteEngine, connect

from .options import db_option, opa_option, opa_token_option

if TYPE_CHECKING:
    from datavisa.engine.lifecycle.engine import Engine

F = Callable[..., Any]


@dataclass(frozen=True)
class Target:
    db_path: Path
    opa_url: str | None
    opa_token: str | None
    server: str | None
    token: str | None
    as_: str | None

    @contextmanager
    def engine(self, policy: bool = True) -> Iterator[Engine | RemoteEngine]:
        """The engine to call: the server's when --server is given, else a local one."""
        if self.server:
            token = self.token
            if not token:  # the person `datavisa login` signed in, if anyone
                from datavisa.engine.identity.session import access_token

                token = access_token()
            with connect(self.server, token) as remote:
                yield remote
        else:
            # Imported here: the store and the policy build are a slow import, and a
            # command run against a server needs neither.
            from datavisa.engine.lifecycle.local import local_engine

            with local_engine(
                self.db_path, self.opa_url, policy=policy, opa_token=self.opa_token
            ) as local:
                yield local

    def actor(self, engine: Engine | RemoteEngine) -> str:
        """Who acts: --as, else the token's subject on a server, else your login name."""
        if self.as_:
            return self.as_
        if isinstance(engine, RemoteEngine):
            return engine.subject
        return os.environ.get("USER") or getpass.getuser()


def target_options(f: F) -> F:
    """Add the options that say who acts and where, and pass them on as `target`."""

    @functools.wraps(f)
    def command(*args: Any, db_path, opa_url, opa_token, server, token, as_, **kwargs: Any) -> Any:
        target = Target(db_path, opa_url, opa_token, server, token, as_)
        return f(*args, target=target, **kwargs)

    for option in (
        click.option(
            "--token",
            envvar=TOKEN_ENV,
            metavar="TOKEN",
            help=f"Bearer token for --server (env {TOKEN_ENV}); "
            "issued by `datavisa token issue SUBJECT`.",
        ),
        click.option(
            "--server",
            envvar=SERVER_ENV,
            metavar="URL",
            is_eager=True,  # read before --from: the server's bundle knows its countries
            help=f"Work through the DataVisa server at URL (env {SERVER_ENV}) instead of "
            "the local store; you act as the token's subject.",
        ),
        opa_token_option,
        opa_option,
        db_option,
        click.option(
            "--as",
            "as_",
            envvar="DATAVISA_AS",
            metavar="SUBJECT",
            help="The subject acting, as named in the directory (env DATAVISA_AS). "
            "Default: the token's subject with --server, else your login name.",
        ),
    ):
        command = option(command)
    return command
