#!/bin/sh
# First start of the primary (docker-entrypoint-initdb.d): the replication role, and the two
# login roles with their passwords and timeouts before the migrations, which create them only
# where missing and grant their memberships. The timeouts are on the roles because PgBouncer
# passes no startup options on (docs/operations.md, "PgBouncer").
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v replication_password="$REPLICATION_PASSWORD" \
    -v app_password="$APP_DB_PASSWORD" -v worker_password="$WORKER_DB_PASSWORD" <<'SQL'
create role replicator login replication password :'replication_password';
create role slotease_app login noinherit password :'app_password';
create role slotease_worker login noinherit password :'worker_password';
alter role slotease_app in database slotease set statement_timeout = '15s';
alter role slotease_app in database slotease set idle_in_transaction_session_timeout = '60s';
alter role slotease_worker in database slotease set statement_timeout = '10min';
alter role slotease_worker in database slotease set idle_in_transaction_session_timeout = '60s';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
