"""`datavisa login` / `logout`: the CLI signed in with the organisation's identity provider."""

from __future__ import annotations

import click

ISSUER_ENV, CLIENT_ENV, AUDIENCE_ENV = "DATAVISA_ISSUER", "DATAVISA_CLIENT_ID", "DATAVISA_AUDIENCE"


@click.command()
@click.option("--issuer", envvar=ISSUER_ENV, required=True, metavar="URL",
              help=f"The identity provider's OpenID Connect issuer (env {ISSUER_ENV}), as the "
              "server's `identity.issuer`.")  # fmt: skip
@click.option("--client-id", envvar=CLIENT_ENV, required=True, metavar="ID",
              help=f"The CLI's client at the IdP (env {CLIENT_ENV}): a public client (no "
              "secret) allowed the authorization code flow, PKCE, the redirect "
              "http://127.0.0.1/callback on any port, and refresh tokens.")  # fmt: skip
@click.option("--audience", envvar=AUDIENCE_ENV, default="datavisa", show_default=True,
              help=f"The audience to ask tokens for (env {AUDIENCE_ENV}), as the server's "
              "`identity.audience`.")  # fmt: skip
@click.option("--no-browser", is_flag=True,
              help="Only print the URL to open (on another machine, say).")  # fmt: skip
def login(issuer: str, client_id: str, audience: str, no_browser: bool) -> None:
    """Sign in with the organisation's identity provider.

    Opens the IdP's sign-in page in your browser (or prints it: --no-browser) and waits for
    it to send you back to this machine (a loopback address). The tokens are kept in your
    config directory (readable by you only) and renewed as they run out; every command
    given --server and no --token then acts as you.

    \b
    Example:
      datavisa login --issuer https://login.example.com/ --client-id datavisa-cli
      datavisa requests --server https://datavisa.example.com
    """
    from datavisa.engine.identity import session

    def show(url: str) -> None:
        click.echo(f"Sign in at:\n  {url}", err=True)
        if not no_browser:
            import webbrowser

            webbrowser.open(url)

    signed = session.sign_in(issuer, client_id, audience, show)
    path = session.save(signed)
    click.echo(f"signed in; the tokens are kept in {path}", err=True)


@click.command()
def logout() -> None:
    """Forget the tokens `datavisa login` kept."""
    from datavisa.engine.identity import session

    if session.forget():
        click.echo("signed out", err=True)
    else:
        click.echo("no one was signed in", err=True)
