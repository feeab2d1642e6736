"""The envelope format of kit.crypto: sealed values open only with their key and their
context, and the keyring is configured or generated as the environment requires."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from slotease.config import ConfigurationError, Settings
from slotease.kit import crypto
from slotease.kit.crypto import DecryptionError, KeyringError, load_keyring, parse_keyring

OLD = crypto.generate_key("old")
NEW = crypto.generate_key("new")
CONTEXT = crypto.field_context(crypto.NOTES, "7f8e0c56-0000-4000-8000-000000000001")


def test_a_value_names_its_key_and_opens_with_its_context_only() -> None:
    keyring = parse_keyring(f"{NEW},{OLD}")
    sealed = keyring.encrypt("allergic to penicillin", context=CONTEXT)

    assert sealed.startswith(b"v1|new|")
    assert b"penicillin" not in sealed
    assert keyring.decrypt(sealed, context=CONTEXT) == "allergic to penicillin"
    # A fresh nonce each time: equal values do not show as equal ciphertexts.
    assert keyring.encrypt("allergic to penicillin", context=CONTEXT) != sealed
    other_row = crypto.field_context(crypto.NOTES, "7f8e0c56-0000-4000-8000-000000000002")
    for context in (other_row, crypto.field_context(crypto.COMMENT, "x")):
        with pytest.raises(DecryptionError):
            keyring.decrypt(sealed, context=context)


def test_tampered_or_truncated_values_do_not_open() -> None:
    keyring = parse_keyring(NEW)
    sealed = keyring.encrypt("+33 1 23 45 67", context=CONTEXT)
    for position in (len(b"v1|new|"), len(sealed) // 2, len(sealed) - 1):
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(DecryptionError):
            keyring.decrypt(bytes(tampered), context=CONTEXT)
    for broken in (sealed[:20], b"v2|new|" + sealed[7:], b"+33 1 23 45 67"):
        with pytest.raises(DecryptionError):
            keyring.decrypt(broken, context=CONTEXT)


def test_older_keys_open_their_values_and_unknown_keys_are_named() -> None:
    sealed = parse_keyring(OLD).encrypt("first visit", context=CONTEXT)

    assert parse_keyring(f"{NEW},{OLD}").decrypt(sealed, context=CONTEXT) == "first visit"
    with pytest.raises(DecryptionError, match="'old'"):
        parse_keyring(NEW).decrypt(sealed, context=CONTEXT)
    # The same id with other key bytes fails the tag check.
    with pytest.raises(DecryptionError):
        parse_keyring(crypto.generate_key("old")).decrypt(sealed, context=CONTEXT)


def test_values_stored_before_encryption_read_as_they_are() -> None:
    keyring = parse_keyring(NEW)
    assert keyring.decrypt(b"v0|first visit", context=CONTEXT) == "first visit"
    assert not b"v0|first visit".startswith(keyring.current_prefix)


def test_keyed_hashes_match_under_every_key_and_differ_by_context() -> None:
    old, both = parse_keyring(OLD), parse_keyring(f"{NEW},{OLD}")
    phone = crypto.field_context(crypto.PHONE, "lookup")

    hashed = old.keyed_hash("+33123", context=phone)
    assert hashed in both.keyed_hashes("+33123", context=phone)
    assert both.keyed_hash("+33123", context=phone) != hashed
    assert old.keyed_hash("+33124", context=phone) != hashed
    assert old.keyed_hash("+33123", context="other") != hashed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no key"),
        ("nokey", "expected"),
        ("bad id:" + base64.b64encode(b"k" * 32).decode(), "expected"),
        ("short:" + base64.b64encode(b"k" * 16).decode(), "32 bytes"),
        ("notbase64:@@@@", "32 bytes"),
        (f"{NEW},{NEW}", "twice"),
    ],
)
def test_a_malformed_key_list_is_refused_with_its_reason(spec: str, message: str) -> None:
    with pytest.raises(KeyringError, match=message):
        parse_keyring(spec)


def test_development_generates_one_private_key_and_production_requires_them(
    tmp_path: Path,
) -> None:
    first = load_keyring(None, production=False, data_dir=tmp_path / "data")
    again = load_keyring(None, production=False, data_dir=tmp_path / "data")
    key_file = tmp_path / "data" / crypto.KEY_FILE

    assert first == again
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with pytest.raises(ConfigurationError, match="SLOTEASE_ENCRYPTION_KEYS: required"):
        Settings(env="production", data_dir=tmp_path / "prod").resolved_keyring()
    assert not (tmp_path / "prod").exists()
    configured = Settings(env="production", encryption_keys=NEW).resolved_keyring()
    assert configured.current == "new"


def test_generated_keys_are_new_each_time_and_need_a_valid_id() -> None:
    assert crypto.generate_key("k1") != crypto.generate_key("k1")
    assert parse_keyring(crypto.generate_key("k1")).current == "k1"
    with pytest.raises(KeyringError):
        crypto.generate_key("no spaces")
