#!/bin/sh
# The streaming replica: on first start a base backup of the primary configured as its standby
# (pg_basebackup -R, as tests/clusters' harness does), then the server.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pg_basebackup --host=primary --username=replicator --pgdata="$PGDATA" \
        --wal-method=stream --checkpoint=fast --write-recovery-conf
    chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on
