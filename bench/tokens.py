"""Access-token checks: what one request pays to verify its token, HS256 (the peer, the
secret SlotEase and legacy Supabase projects sign with) against ES256 and RS256 from a JWKS
(Supabase's asymmetric signing keys). In-process, keys held (no fetch), interleaved rounds.

    .venv/bin/python -m bench.tokens [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from slotease.auth.tokens import SigningKeys, TokenKeys, verify_access_token

ISSUER = "https://project.supabase.co/auth/v1"
SECRET = "bench-secret-" + "x" * 40
ROUNDS = 5


def _claims() -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "sub": str(uuid.uuid4()),
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + 3600,
    }


@contextmanager
def _published(keys: list[dict[str, str]]) -> Iterator[str]:
    """A JWKS endpoint on a free local port."""
    body = json.dumps({"keys": keys}).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def _rate(check: Callable[[], object], seconds: float) -> float:
    """Checks per second over `seconds`."""
    count, deadline = 0, time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        check()
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    published = [
        {**json.loads(ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e1", "alg": "ES256"},
        {**json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r1", "alg": "RS256"},
    ]
    with _published(published) as url:
        # Read once and held for the run: the figure is the check, not the fetch.
        signing = SigningKeys(url, refresh_seconds=1e9)
        signing.refresh()
    keys = TokenKeys(SECRET, signing)
    tokens = {
        "HS256": jwt.encode(_claims(), SECRET, algorithm="HS256"),
        "ES256": jwt.encode(_claims(), ec_key, algorithm="ES256", headers={"kid": "e1"}),
        "RS256": jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "r1"}),
    }
    per_round = args.seconds / ROUNDS / len(tokens)
    rates: dict[str, list[float]] = {name: [] for name in tokens}
    for _ in range(ROUNDS):
        for name, token in tokens.items():
            rates[name].append(
                _rate(partial(verify_access_token, keys, token, issuers={ISSUER}), per_round)
            )
    load = os.getloadavg()[0]
    peer = statistics.median(rates["HS256"])
    print(f"load average (1 min) {load:.2f}")
    print("| algorithm | checks/s (median of 5) | µs per check | cost vs HS256 |")
    print("|---|---|---|---|")
    for name, measured in rates.items():
        rate = statistics.median(measured)
        print(f"| {name} | {rate:,.0f} | {1e6 / rate:.1f} | {peer / rate:.2f} |")


if __name__ == "__main__":
    main()
