"""What an attacker sends a gateway, as tables the engine's endpoints and the real
gateways (nginx, Caddy) are each tested with."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import yaml

from datavisa.engine.api import config
from datavisa.engine.api.config import GatewayConfig
from datavisa.engine.location.networks import Networks

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout
EXAMPLES = PROJECT_ROOT / "examples"

# Host whose only route is the shipped `docs` one (any host, prefix /docs, public-docs),
# on the payments host, where an upstream that resolves one of these paths to /ledger/…
# would serve the payments ledger.
HOST = "payments.localhost"
CANONICAL = "/docs/intro"  # allowed to anyone: public-docs is public
# Paths under /docs that an upstream decoding twice, stripping path parameters, folding
# Unicode or trimming dots and controls may serve as /ledger/2026: each is denied
# path_not_canonical, never judged as the /docs route.
NOT_CANONICAL = [
    "/docs/..;/ledger/2026",
    "/docs/..;x=1/ledger/2026",
    "/docs;x=1/../ledger/2026",
    "/docs/%252e%252e/ledger/2026",
    "/docs/%25%32%65%25%32%65/ledger/2026",
    "/docs/%252e%252e%252fledger/2026",
    "/docs/%c0%ae%c0%ae/ledger/2026",
    "/docs/%ef%bc%8e%ef%bc%8e/ledger/2026",
    "/docs/\uff0e\uff0e/ledger/2026",
    "/docs/%e2%80%a4%e2%80%a4/ledger/2026",
    "/docs/%u002e%u002e/ledger/2026",
    "/docs/.../ledger/2026",
    "/docs/..%00/ledger/2026",
    "/docs/..%09/ledger/2026",
    "/docs/%2e%2e/ledger/2026",
    "/docs/..%5cledger/2026",
]


def example_gateway() -> GatewayConfig:
    """The gateway section of examples/datavisa.yaml, read as `datavisa serve` reads it."""
    path = EXAMPLES / "datavisa.yaml"
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return config.from_dict(doc, path.parent, str(path)).gateway


def example_location() -> Networks:
    """Where examples/datavisa.yaml says callers are (its gateway.proxies and networks)."""
    path = EXAMPLES / "datavisa.yaml"
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return config.from_dict(doc, path.parent, str(path)).location


def raw_request(
    port: int, path: str, headers: dict[str, str], source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    """One GET with `path` sent byte for byte as UTF-8 (http.client would refuse or
    re-encode some of the table), on its own connection."""
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    lines.append("Connection: close")
    sent = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    with socket.create_connection(("127.0.0.1", port), 10, source_address=(source, 0)) as sock:
        sock.sendall(sent)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        answer[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), answer, body


def documented(path: Path) -> dict[str, Any]:
    """The YAML blocks of a Markdown file, each parsed, merged in order."""
    text, merged = path.read_text(), {}
    for block in text.split("```yaml")[1:]:
        merged |= yaml.safe_load(block.split("```", 1)[0]) or {}
    return merged
