"""RS256/ES256 access tokens checked with a JWKS (auth.tokens.SigningKeys): keys fetched,
cached, fetched again on rotation (rate-limited), and no algorithm accepted beyond each key's."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from slotease.auth import tokens
from slotease.auth.tokens import InvalidToken, SigningKeys, TokenKeys, verify_access_token
from tests.conftest import TEST_JWT_SECRET

ISSUER = "https://project.supabase.co/auth/v1"


class Jwks:
    """A JWKS endpoint whose keys the test changes, counting its fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.url = ""


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    published = Jwks()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_GET(self) -> None:
            published.fetches += 1
            data = json.dumps({"keys": published.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    published.url = f"http://127.0.0.1:{server.server_address[1]}/auth/v1/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield published
    server.shutdown()
    server.server_close()


def public_jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = ECAlgorithm if alg == "ES256" else RSAAlgorithm
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid, "alg": alg}


def token(key: Any, alg: str, kid: str | None) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": str(uuid.uuid4()), "aud": "authenticated",
              "role": "authenticated", "iat": now, "exp": now + 600}  # fmt: skip
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid} if kid else None)


def check(keys: TokenKeys, value: str) -> dict[str, Any]:
    return verify_access_token(keys, value, issuers={ISSUER})


def test_rs256_and_es256_tokens_from_the_jwks_beside_hs256(jwks: Jwks) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks.keys = [public_jwk(rsa_key, "r1", "RS256"), public_jwk(ec_key, "e1", "ES256")]
    keys = TokenKeys(TEST_JWT_SECRET, SigningKeys(jwks.url, refresh_seconds=600))

    assert check(keys, token(rsa_key, "RS256", "r1"))["aud"] == "authenticated"
    assert check(keys, token(ec_key, "ES256", "e1"))["role"] == "authenticated"
    assert check(keys, token(TEST_JWT_SECRET, "HS256", None))["iss"] == ISSUER
    assert jwks.fetches == 1

    other = ec.generate_private_key(ec.SECP256R1())
    refused = [
        token(other, "ES256", "e1"),  # not the published key
        token(rsa_key, "RS256", "e1"),  # the key id of an EC key, RSA-signed
        token(ec_key, "ES256", None),  # no key id
        jwt.encode({"sub": "x"}, "", algorithm="none"),
        token("h" * 64, "HS512", None),
    ]
    for value in refused:
        with pytest.raises(InvalidToken):
            check(keys, value)
    # Without a JWKS, asymmetric tokens are refused outright.
    with pytest.raises(InvalidToken):
        check(TokenKeys(TEST_JWT_SECRET), token(ec_key, "ES256", "e1"))


def test_a_rotated_key_is_fetched_once_the_rate_limit_allows(jwks: Jwks) -> None:
    clock = [1000.0]
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    jwks.keys = [public_jwk(old, "k1", "ES256")]
    signing = SigningKeys(jwks.url, refresh_seconds=600, clock=lambda: clock[0])
    keys = TokenKeys(TEST_JWT_SECRET, signing)
    signing.refresh()
    check(keys, token(old, "ES256", "k1"))

    # The project rotates: the new key id is unknown, and asking again waits for the limit.
    jwks.keys = [public_jwk(new, "k2", "ES256"), public_jwk(old, "k1", "ES256")]
    with pytest.raises(InvalidToken):
        check(keys, token(new, "ES256", "k2"))
    assert jwks.fetches == 1
    clock[0] += tokens.UNKNOWN_KEY_REFETCH_SECONDS + 1
    check(keys, token(new, "ES256", "k2"))
    assert jwks.fetches == 2
    for _ in range(3):
        with pytest.raises(InvalidToken):
            check(keys, token(new, "ES256", "forged"))
    assert jwks.fetches == 2

    # Past the refresh period the set is read again; a key it no longer lists stops working.
    jwks.keys = [public_jwk(new, "k2", "ES256")]
    clock[0] += 601
    check(keys, token(new, "ES256", "k2"))
    assert jwks.fetches == 3
    with pytest.raises(InvalidToken):
        check(keys, token(old, "ES256", "k1"))


def test_a_jwks_that_cannot_be_read_keeps_the_keys_held(jwks: Jwks) -> None:
    clock = [1000.0]
    key = ec.generate_private_key(ec.SECP256R1())
    jwks.keys = [public_jwk(key, "k1", "ES256")]
    signing = SigningKeys(jwks.url, refresh_seconds=600, clock=lambda: clock[0])
    keys = TokenKeys(TEST_JWT_SECRET, signing)
    check(keys, token(key, "ES256", "k1"))
    signing.url = "http://127.0.0.1:9/unreachable"
    clock[0] += 601
    check(keys, token(key, "ES256", "k1"))
