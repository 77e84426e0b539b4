"""A WebAuthn authenticator in Python (an ES256 key made with `cryptography`), for the
tests that must answer with what no browser sends: another origin's client data, a sign
counter that went back. It builds the very bytes an authenticator and a browser would
(WebAuthn Level 3: clientDataJSON, authenticator data, a "none" attestation, the
signature over authenticator data and the client data's hash); the server's verifier is
py_webauthn, unchanged."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    rp_id: str
    origin: str
    sign_count: int = 0
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin,
             "crossOrigin": False}
        ).encode()  # fmt: skip

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
             -3: numbers.y.to_bytes(32, "big")}
        )  # fmt: skip

    def _auth_data(self, flags: int, attested: bytes = b"") -> bytes:
        rp_hash = hashlib.sha256(self.rp_id.encode()).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", self.sign_count) + attested

    def create(self, options: dict[str, Any], origin: str | None = None) -> dict[str, Any]:
        """The answer to navigator.credentials.create(options)."""
        attested = (
            bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id
            + self._cose_key()
        )  # fmt: skip
        auth_data = self._auth_data(UP | UV | AT, attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client = self._client_data("webauthn.create", options["challenge"], origin)
        cid = b64url(self.credential_id)
        return {
            "id": cid, "rawId": cid, "type": "public-key",
            "response": {"clientDataJSON": b64url(client),
                         "attestationObject": b64url(attestation), "transports": ["usb"]},
            "clientExtensionResults": {},
        }  # fmt: skip

    def get(
        self,
        options: dict[str, Any],
        origin: str | None = None,
        count: int | None = None,
        flags: int = UP | UV,
    ) -> dict[str, Any]:
        """The answer to navigator.credentials.get(options); the counter advances
        unless `count` says what it is."""
        self.sign_count = self.sign_count + 1 if count is None else count
        auth_data = self._auth_data(flags)
        client = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(
            auth_data + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256())
        )
        cid = b64url(self.credential_id)
        return {
            "id": cid, "rawId": cid, "type": "public-key",
            "response": {"clientDataJSON": b64url(client),
                         "authenticatorData": b64url(auth_data),
                         "signature": b64url(signature), "userHandle": None},
            "clientExtensionResults": {},
        }  # fmt: skip
