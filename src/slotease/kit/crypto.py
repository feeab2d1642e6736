"""Encryption at rest for sensitive fields (architecture decision 10).

Every value is sealed with AES-256-GCM under one key of the keyring and stored as
`v1|<key id>|<12-byte nonce><ciphertext and tag>`, so a value names the key that opens it and
several keys can be live while `slotease keys rotate` moves values to the newest. The
associated data is the value's context (`table.column:row id`): a ciphertext copied into
another column or row no longer opens. Values stored before encryption existed were marked
`v0|<plaintext>` by migration 0019; they read as they are until rotation encrypts them.

The keyring comes from SLOTEASE_ENCRYPTION_KEYS (`kid:base64 key,...`, the first one
encrypts); outside production one key is generated once into the data directory. A process
installs its keyring at start (`install`) and the repositories call `encrypt`/`decrypt`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

ENCRYPTED = b"v1|"
LEGACY_PLAINTEXT = b"v0|"
NONCE_BYTES = 12
KEY_BYTES = 32
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
KEY_FILE = "encryption_keys"
# What each key seals into app.encryption_keys, so that a process started with a wrong key
# stops at once instead of failing on the first value it reads.
CHECK_PLAINTEXT = "slotease key check"


# The sealed fields, by the first part of their context; the row id follows (`field_context`).
PHONE = "user_profiles.phone"
NOTES = "appointments.notes"
# A comment is sealed to its appointment, which has one per organization.
COMMENT = "feedback.comment"
PUSH_TOKEN = "notification_preferences.push_token"
# Both the live and the previous secret: rotating a secret moves it between the two columns.
WEBHOOK_SECRET = "webhooks.secret"
MFA_SECRET = "mfa_factors.secret"


class KeyringError(Exception):
    """SLOTEASE_ENCRYPTION_KEYS is missing, malformed, or does not match the database."""


class DecryptionError(Exception):
    """A stored value that does not open: tampered, moved from its context, or under a key
    the keyring does not hold."""


@dataclass(frozen=True)
class Keyring:
    """The keys by id; `current` encrypts, every one decrypts."""

    keys: dict[str, bytes]
    current: str

    def encrypt(self, value: str, *, context: str, kid: str | None = None) -> bytes:
        """Sealed under the current key, or under `kid` (the key check values)."""
        kid = kid or self.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[kid]).encrypt(nonce, value.encode(), context.encode())
        return ENCRYPTED + kid.encode() + b"|" + nonce + sealed

    def decrypt(self, blob: bytes, *, context: str) -> str:
        if blob.startswith(LEGACY_PLAINTEXT):
            return blob[len(LEGACY_PLAINTEXT) :].decode()
        kid, nonce, sealed = _split(blob)
        key = self.keys.get(kid)
        if key is None:
            raise DecryptionError(f"the value is under key {kid!r}, which is not configured")
        try:
            return AESGCM(key).decrypt(nonce, sealed, context.encode()).decode()
        except (InvalidTag, UnicodeDecodeError) as exc:
            raise DecryptionError(f"the value does not open for {context}") from exc

    @property
    def current_prefix(self) -> bytes:
        """How every value sealed under the current key begins."""
        return ENCRYPTED + self.current.encode() + b"|"

    def keyed_hash(self, value: str, *, context: str) -> bytes:
        """HMAC-SHA256 of `value` under a key derived from the current one, for a field that
        must be looked up without decrypting every row."""
        return _hash(self.keys[self.current], value, context)

    def keyed_hashes(self, value: str, *, context: str) -> list[bytes]:
        """The hash under every key: a lookup matches rows not yet rotated too."""
        return [_hash(key, value, context) for key in self.keys.values()]


def _split(blob: bytes) -> tuple[str, bytes, bytes]:
    if not blob.startswith(ENCRYPTED):
        raise DecryptionError("the value is not in a known format")
    kid, sep, rest = blob[len(ENCRYPTED) :].partition(b"|")
    if not sep or len(rest) <= NONCE_BYTES:
        raise DecryptionError("the value is truncated")
    return kid.decode(errors="replace"), rest[:NONCE_BYTES], rest[NONCE_BYTES:]


def _hash(key: bytes, value: str, context: str) -> bytes:
    # A key of its own for hashing, so no HMAC output relates to the encryption key.
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"slotease keyed hash"
    ).derive(key)
    return hmac.new(derived, f"{context}\x00{value}".encode(), hashlib.sha256).digest()


def generate_key(kid: str) -> str:
    """A new entry for SLOTEASE_ENCRYPTION_KEYS: `kid:base64 key`."""
    if not KEY_ID.match(kid):
        raise KeyringError("a key id is 1-32 letters, digits, '-' or '_'")
    return f"{kid}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def parse_keyring(spec: str) -> Keyring:
    keys: dict[str, bytes] = {}
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        kid, sep, encoded = entry.partition(":")
        if not sep or not KEY_ID.match(kid):
            raise KeyringError(
                "SLOTEASE_ENCRYPTION_KEYS: expected 'kid:base64key,...' with key ids of"
                " letters, digits, '-' or '_'"
            )
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            key = b""
        if len(key) != KEY_BYTES:
            raise KeyringError(
                f"SLOTEASE_ENCRYPTION_KEYS: key {kid!r} must be {KEY_BYTES} bytes in base64"
                " (make one with `slotease keys generate`)"
            )
        if kid in keys:
            raise KeyringError(f"SLOTEASE_ENCRYPTION_KEYS: key id {kid!r} appears twice")
        keys[kid] = key
    if not keys:
        raise KeyringError("SLOTEASE_ENCRYPTION_KEYS: no key given")
    return Keyring(keys=keys, current=next(iter(keys)))


def load_keyring(spec: str | None, *, production: bool, data_dir: Path) -> Keyring:
    """The configured keyring; outside production, without configuration, one generated
    once into the data directory (readable by its owner only)."""
    if spec:
        return parse_keyring(spec)
    if production:
        raise KeyringError(
            "SLOTEASE_ENCRYPTION_KEYS: required when SLOTEASE_ENV=production"
            " (make a key with `slotease keys generate`)"
        )
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(generate_key("dev1"))
        log.warning(
            "SLOTEASE_ENCRYPTION_KEYS is not set: generated a key in %s (development only)", path
        )
    return parse_keyring(path.read_text().strip())


_installed: Keyring | None = None


def install(keyring: Keyring) -> None:
    """Make `keyring` the one this process encrypts and decrypts with."""
    global _installed
    _installed = keyring


def keyring() -> Keyring:
    if _installed is None:
        raise KeyringError("no encryption keyring is installed in this process")
    return _installed


def encrypt(value: str, *, context: str) -> bytes:
    return keyring().encrypt(value, context=context)


def decrypt(blob: bytes, *, context: str) -> str:
    return keyring().decrypt(bytes(blob), context=context)


def encrypt_optional(value: str | None, *, context: str) -> bytes | None:
    return None if value is None else encrypt(value, context=context)


def decrypt_optional(blob: bytes | None, *, context: str) -> str | None:
    return None if blob is None else decrypt(blob, context=context)


def seal_in(document: dict[str, Any], key: str, *, context: str) -> dict[str, Any]:
    """A JSON document to keep at rest, with its `key` sealed (as base64 text)."""
    if document.get(key) is None:
        return document
    sealed = encrypt(document[key], context=context)
    return {**document, key: base64.b64encode(sealed).decode()}


def open_in(document: dict[str, Any], key: str, *, context: str) -> dict[str, Any]:
    """The document `seal_in` made, with its `key` in plaintext again."""
    if document.get(key) is None:
        return document
    return {**document, key: decrypt(base64.b64decode(document[key]), context=context)}


def field_context(column: str, row_id: object) -> str:
    """The associated data of a field: `table.column:row id`."""
    return f"{column}:{row_id}"
