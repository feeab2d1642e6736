# SlotEase: the wheel built in one stage, installed alone in a slim runtime (see docs/operations.md,
# "Deployment"). `docker build .` gives the API/worker image; `--target pgbouncer` the pooler
# compose.yaml runs in front of PostgreSQL.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir build==1.2.2
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m build --wheel --outdir /dist

# PgBouncer 1.18, the version the pooling tests run against (tests/clusters/test_pgbouncer.py).
FROM debian:bookworm-slim AS pgbouncer
RUN apt-get update \
    && apt-get install -y --no-install-recommends pgbouncer \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10002 --user-group --home-dir /var/lib/slotease-pgbouncer \
       --create-home pgbouncer
COPY deploy/pgbouncer/entrypoint.sh /usr/local/bin/pgbouncer-entrypoint
COPY deploy/pgbouncer/pgbouncer.ini /etc/pgbouncer/slotease.ini
USER 10002
EXPOSE 6432
ENTRYPOINT ["/usr/local/bin/pgbouncer-entrypoint"]

FROM python:3.11-slim-bookworm AS runtime
# pg_dump and pg_restore of the server's major version, for `slotease db backup|restore`.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl && rm /tmp/*.whl
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/slotease --create-home slotease
USER 10001
WORKDIR /var/lib/slotease
ENV SLOTEASE_ENV=production \
    SLOTEASE_DATA_DIR=/var/lib/slotease \
    PYTHONUNBUFFERED=1
EXPOSE 8000
# /ready answers 503 while the database is unreachable: the container is unhealthy then.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2)"]
CMD ["slotease", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-worker"]
