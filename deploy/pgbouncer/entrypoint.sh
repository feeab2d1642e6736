#!/bin/sh
# PgBouncer's user list written from the environment at start, so that no password is baked
# into the image, then PgBouncer itself in the foreground.
set -eu
umask 077
printf '"%s" "%s"\n' slotease_app "$SLOTEASE_APP_DB_PASSWORD" \
    > /var/lib/slotease-pgbouncer/userlist.txt
exec /usr/sbin/pgbouncer /etc/pgbouncer/slotease.ini
