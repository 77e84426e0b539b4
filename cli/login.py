"""`datavisa login` / `logout`: the CLI signed in with the organisation's identity provider."""

from __future__ import annotations

import click

ISSUER_ENV, CLIENT_ENV, AUDIENCE_ENV = "DATAVISA_ISSUER", "DATAVISA_CLIENT_ID", "DATAVISA_AUDIENCE"


@click.command()
@click.option("--issuer", envvar=ISSUER_ENV, metavar="URL",
              help=f"The identity provider's OpenID Connect issuer (env {ISSUER_ENV}), as the "
              "server's `identity.issuer`; default: the one you last signed in at.")  # fmt: skip
@click.option("--client-id", envvar=CLIENT_ENV, metavar="ID",
              help=f"The CLI's client at the IdP (env {CLIENT_ENV}): a public client (no "
              "secret) allowed the authorization code flow, PKCE, the redirect "
              "http://127.0.0.1/callback on any port, and refresh tokens; default: the one "
              "you last signed in with.")  # fmt: skip
@click.option("--audience", envvar=AUDIENCE_ENV, metavar="AUD",
              help=f"The audience to ask tokens for (env {AUDIENCE_ENV}), as the server's "
              "`identity.audience`; default: the last one, else datavisa.")  # fmt: skip
@click.option("--no-browser", is_flag=True,
              help="Only print the URL to open (on another machine, say).")  # fmt: skip
@click.option("--device/--loopback", default=None,
              help="How to sign in: the device authorization grant (a code to enter at "
              "the IdP, on any device; RFC 8628) or a browser sent back to this machine. "
              "Default: the device grant where the IdP offers it.")  # fmt: skip
@click.option("--max-age", type=click.IntRange(0, 86400), metavar="SECONDS",
              help="Sign in again at the IdP (prompt=login), as a step_up_required denial "
              "asks: its step_up.max_age_s.")  # fmt: skip
@click.option("--acr-values", metavar="'ACR ...'",
              help="How to sign in, in the IdP's names (a step-up denial's "
              "step_up.acr_values, space-separated).")  # fmt: skip
def login(
    issuer: str | None,
    client_id: str | None,
    audience: str | None,
    no_browser: bool,
    device: bool | None,
    max_age: int | None,
    acr_values: str | None,
) -> None:
    """Sign in with the organisation's identity provider.

    Where the IdP offers the device authorization grant, prints a code and the page to
    enter it at (on this machine or your phone) and waits until you have signed in there;
    otherwise (or with --loopback) opens the IdP's sign-in page in your browser (or prints
    it: --no-browser) and waits for it to send you back to this machine (a loopback
    address). The tokens are kept in your config directory (readable by you only) and
    renewed as they run out; every command given --server and no --token then acts as you.

    A denial with step_up_required (policy wants a recent, strong sign-in to approve,
    break glass or get credentials) names the --max-age (and --acr-values) that satisfy
    it: sign in again with them, then repeat the command.

    \b
    Examples:
      datavisa login --issuer https://login.example.com/ --client-id datavisa-cli
      datavisa requests --server https://datavisa.example.com
      datavisa login --max-age 900      # step-up: signed in within the last 15 minutes
    """
    from datavisa.engine.identity import session

    def show(url: str) -> None:
        click.echo(f"Sign in at:\n  {url}", err=True)
        if not no_browser:
            import webbrowser

            webbrowser.open(url)

    kept = session.load()
    issuer = issuer or (kept.issuer if kept else None)
    client_id = client_id or (kept.client_id if kept else None)
    audience = audience or (kept.audience if kept else None) or "datavisa"
    for value, option, env in (
        (issuer, "--issuer", ISSUER_ENV),
        (client_id, "--client-id", CLIENT_ENV),
    ):
        if not value:
            raise click.UsageError(f"give {option} (or ${env}): no earlier sign-in to take it from")
    if acr_values is not None and not acr_values.strip():
        raise click.BadParameter("name at least one value", param_hint="--acr-values")
    assert issuer and client_id
    if device is None:
        device = session.has_device_grant(issuer)
    if device:

        def show_code(code: str, uri: str, complete: str | None) -> None:
            click.echo(f"To sign in, open:\n  {uri}\nand enter the code: {code}", err=True)
            if not no_browser:
                import webbrowser

                webbrowser.open(complete or uri)
            click.echo("Waiting for the sign-in...", err=True)

        signed = session.sign_in_on_device(
            issuer, client_id, audience, show_code, max_age=max_age, acr_values=acr_values
        )
    else:
        signed = session.sign_in(
            issuer, client_id, audience, show, max_age=max_age, acr_values=acr_values
        )
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
