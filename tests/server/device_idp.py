"""An OpenID provider with the device authorization grant (RFC 8628), on loopback, for
the CLI's device sign-in: node-oidc-provider (a certified implementation; tests/idp,
installed into .tools/idp by `make setup`), since Ory Hydra 2.3 has no device grant.
`browse` plays the person on another device: it opens the verification URL and submits
each page's form (confirm the code, sign in as the person, authorize) as a browser
would. Tests skip, saying why, where node or the package is missing."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from live_server import wait_for

from datavisa.engine.policy.process import free_port

HERE = Path(__file__).resolve().parents[2] / ".tools" / "idp"
CLIENT = "datavisa-cli"


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "form":
            self.forms.append({"action": named.get("action") or "", "fields": {}})
        elif tag in ("input", "button") and self.forms and named.get("name"):
            self.forms[-1]["fields"].setdefault(named["name"], named.get("value") or "")


class DeviceIdp:
    def __init__(self, log: Path) -> None:
        node = shutil.which("node")
        if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
            pytest.skip("node-oidc-provider is not installed (make setup installs it with npm)")
        port = free_port()
        self.issuer = f"http://127.0.0.1:{port}"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [node, str(HERE / "idp.mjs"), str(port)], stdout=self._log, stderr=subprocess.STDOUT
        )

        def up() -> bool:
            try:
                return requests.get(self.issuer + "/.well-known/openid-configuration").ok
            except requests.ConnectionError:
                assert self.proc.poll() is None, log.read_text()
                return False

        wait_for(up, "the device-flow IdP to answer", 30)

    def browse(self, url: str, person: str, refuse: bool = False) -> str:
        """What `person` does with the verification URL on their own device: confirm the
        code (or abort, `refuse`), sign in, authorize. The last page's text."""
        browser = requests.Session()
        page = browser.get(url, timeout=30)
        for _ in range(8):
            forms = _Forms()
            forms.feed(page.text)
            if not forms.forms:
                return page.text
            fields = dict(forms.forms[0]["fields"])
            aborting = refuse and "abort" in fields
            fields.pop("confirm" if refuse else "abort", None)  # the button pressed
            if "login" in fields:
                fields |= {"login": person, "password": "any"}
            page = browser.post(urljoin(page.url, forms.forms[0]["action"]), data=fields)
            if aborting:
                return page.text
        raise AssertionError(f"never finished the sign-in: {page.text[:500]}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._log.close()
