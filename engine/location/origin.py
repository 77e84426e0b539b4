"""Where a decision's location comes from: the facts the decision input carries as
`origin` (rego/datavisa/origin reads them), and the country the decision judges.

The sources, from the most vouched-for down:

- `attested`: someone holding a credential says so: a gateway's trusted country header,
  or a service asking with its service token about a subject it serves;
- `derived`: the client's address, mapped to a country by the configured networks, then
  an offline IP-to-country database (`networks`);
- `declared`: the caller's own word (`--from`, a body's `location`).

The country judged is the most vouched-for one known; the others stay beside it, so that
policy can see a declared country the network disagrees with. Nothing here decides which
source is good enough for what.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ATTESTED, DERIVED, DECLARED = "attested", "derived", "declared"
UNKNOWN = "unknown"  # a country no one knows; an address no network or database places
# How the caller reached the engine: the CLI running it in-process has no address at all.
LOCAL, API, GATEWAY = "local", "api", "gateway"


@dataclass(frozen=True)
class Origin:
    """How the location of one decision is known. `address` is the client's, and `via`
    says who named it (`peer`: the connection itself; `proxy 10.0.0.5`: a trusted proxy's
    X-Forwarded-For)."""

    channel: str
    declared: str | None = None
    derived: str | None = None
    attested: str | None = None
    attested_by: str | None = None
    address: str | None = None
    via: str | None = None

    @classmethod
    def local(cls, declared: str) -> Origin:
        """The CLI without a server: the engine in-process, no address, the --from given."""
        return cls(LOCAL, declared=declared_country(declared))

    @property
    def source(self) -> str:
        """Where the country judged comes from (the most vouched-for source that named
        one; `derived` for an address placed nowhere, when nothing else said more)."""
        if self.attested:
            return ATTESTED
        if self.derived and self.derived != UNKNOWN:
            return DERIVED
        if self.declared or self.derived is None:
            return DECLARED
        return DERIVED

    @property
    def country(self) -> str:
        """The country the decision judges: `unknown` when no source named one."""
        named = {ATTESTED: self.attested, DERIVED: self.derived, DECLARED: self.declared}
        return named[self.source] or UNKNOWN

    def facts(self) -> dict[str, Any]:
        """The decision input's `origin`: what is known, nothing that is not."""
        facts = {
            "source": self.source,
            "channel": self.channel,
            "declared": self.declared,
            "derived": self.derived,
            "attested": self.attested,
            "attested_by": self.attested_by,
            "address": self.address,
            "via": self.via,
        }
        return {k: v for k, v in facts.items() if v is not None}


def declared_country(country: str | None) -> str | None:
    """What a caller's `location` declares: nothing for none, nor for `unknown` (the
    API's default for an approver)."""
    return None if country in (None, "", UNKNOWN) else country
