"""API keys the loopback venue accepts, and Binance's request-signature check.

Binance signs ``urlencode(params)`` with the key's secret: HMAC-SHA256 as lowercase hex, or
Ed25519 as standard base64 (percent-encoded in a URL). The venue holds the HMAC secret or only
the Ed25519 *public* key, and checks the raw, still-encoded query string exactly as sent
(:func:`split_signed`). :func:`generate_ed25519` makes a throw-away key pair: the PKCS#8 PEM
private key goes to the Nautilus adapter as ``api_secret`` (it detects Ed25519 from the PEM),
the public half to the venue. Secrets never appear in a ``repr``.

>>> venue_key, pem = generate_ed25519("my-key")
>>> pem.startswith("-----BEGIN PRIVATE KEY-----"), venue_key.kind
(True, 'ed25519')
>>> key = ApiKey.hmac("k", "s3cret")
>>> "s3cret" in repr(key)
False
>>> query = "symbol=BTCUSDT&timestamp=1"
>>> payload, sig = split_signed(f"{query}&signature={sign_hmac('s3cret', query)}")
>>> key.verify(payload, sig), key.verify(payload + "&x=1", sig)
(True, False)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from training.errors import BadInputError

__all__ = ["ApiKey", "generate_ed25519", "sign_hmac", "split_signed"]


@dataclass(frozen=True)
class ApiKey:
    """One account's API key: ``key`` plus an HMAC secret or an Ed25519 public key (32 bytes)."""

    key: str
    hmac_secret: str | None = field(default=None, repr=False)
    ed25519_public: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.key:
            raise BadInputError("api key must not be empty", field="api_key")
        if (self.hmac_secret is None) == (self.ed25519_public is None):
            raise BadInputError(
                "give exactly one of hmac_secret and ed25519_public", field="api_key"
            )
        if self.ed25519_public is not None and len(self.ed25519_public) != 32:
            raise BadInputError("ed25519_public must be the 32 raw key bytes", field="api_key")

    @classmethod
    def hmac(cls, key: str, secret: str) -> ApiKey:
        return cls(key, hmac_secret=secret)

    @classmethod
    def ed25519(cls, key: str, public_key: bytes | str) -> ApiKey:
        """``public_key``: the 32 raw bytes, or a PEM ``PUBLIC KEY`` block."""
        if isinstance(public_key, str):
            loaded = serialization.load_pem_public_key(public_key.encode())
            if not isinstance(loaded, Ed25519PublicKey):
                raise BadInputError("not an Ed25519 public key", field="api_key")
            public_key = loaded.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        return cls(key, ed25519_public=public_key)

    @property
    def kind(self) -> str:
        return "hmac" if self.hmac_secret is not None else "ed25519"

    def verify(self, payload: str, signature: str) -> bool:
        """Whether ``signature`` (already percent-decoded) signs ``payload``."""
        if self.hmac_secret is not None:
            return hmac.compare_digest(sign_hmac(self.hmac_secret, payload), signature)
        assert self.ed25519_public is not None
        try:
            raw = base64.b64decode(signature, validate=True)
            Ed25519PublicKey.from_public_bytes(self.ed25519_public).verify(raw, payload.encode())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def sign_hmac(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def split_signed(raw_query: str) -> tuple[str, str] | None:
    """``(payload, signature)`` of a raw query ending in ``&signature=...``, else None."""
    i = raw_query.rfind("&signature=")
    if i < 0:
        return None
    return raw_query[:i], unquote(raw_query[i + len("&signature=") :])


def generate_ed25519(key: str = "loopback-venue-key") -> tuple[ApiKey, str]:
    """A fresh Ed25519 pair: the venue's :class:`ApiKey` and the client's PKCS#8 PEM secret."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return ApiKey(key, ed25519_public=public), pem
