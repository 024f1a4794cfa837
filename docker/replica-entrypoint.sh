#!/bin/bash
# Entrypoint of the replica service (postgres image): clone the primary once, then run as a
# hot standby through the image's own entrypoint.
#
# First start (no cluster in $PGDATA): wait for the primary, pg_basebackup it with -R
# (writes standby.signal and primary_conninfo/primary_slot_name to postgresql.auto.conf),
# streaming WAL through the replication slot $REPLICATION_SLOT. Every later start: the
# data directory holds a cluster, so nothing is cloned and the standby resumes streaming.
#
# The clone is made in "$PGDATA.partial" and renamed into place only once complete, so an
# interrupted basebackup never leaves a half-copied cluster that looks like a real one; the
# next start throws the partial copy away and clones again.
#
# Started as root (the image's default): PostgreSQL tools refuse to run as root, so they run
# as the postgres user through gosu (shipped in the image), and the image's entrypoint then
# drops to postgres itself before starting the server. Its own initdb step is skipped
# because PG_VERSION exists by then.
set -Eeuo pipefail

: "${PGDATA:?}"
: "${PGPASSWORD:?PGPASSWORD (the replication role password) must be set}"
PRIMARY_HOST=${PRIMARY_HOST:-primary}
PRIMARY_PORT=${PRIMARY_PORT:-5432}
REPLICATION_USER=${REPLICATION_USER:-replicator}
REPLICATION_SLOT=${REPLICATION_SLOT:-replica_1}
PRIMARY_WAIT_S=${PRIMARY_WAIT_S:-60}

say() { echo "replica-entrypoint: $*" >&2; }

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        gosu postgres "$@"
    else
        "$@"
    fi
}

clone_primary() {
    local parent partial waited=0 slot_exists create_slot=()
    parent=$(dirname "$PGDATA")
    partial="$PGDATA.partial"

    if [ -d "$PGDATA" ] && [ -n "$(ls -A "$PGDATA")" ]; then
        say "$PGDATA is not empty but holds no cluster (no PG_VERSION); refusing to overwrite it"
        exit 1
    fi
    mkdir -p "$parent"
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$parent"
    fi
    rm -rf -- "$partial"  # left by a basebackup interrupted on an earlier start

    until as_postgres pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT"; do
        if [ "$waited" -ge "$PRIMARY_WAIT_S" ]; then
            say "primary $PRIMARY_HOST:$PRIMARY_PORT not ready after ${PRIMARY_WAIT_S}s"
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done

    # The slot survives on the primary when only the replica's volume was removed: reuse it
    # then (pg_basebackup --create-slot would fail on the existing name).
    slot_exists=$(as_postgres psql -XAtq -v ON_ERROR_STOP=1 -h "$PRIMARY_HOST" \
        -p "$PRIMARY_PORT" -U "$REPLICATION_USER" -d postgres --set=slot="$REPLICATION_SLOT" \
        <<<"SELECT count(*) FROM pg_replication_slots WHERE slot_name = :'slot';")
    if [ "$slot_exists" = 0 ]; then
        create_slot=(--create-slot)
    fi

    say "cloning $PRIMARY_HOST:$PRIMARY_PORT (slot $REPLICATION_SLOT) into $PGDATA"
    as_postgres pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPLICATION_USER" \
        -D "$partial" --write-recovery-conf --wal-method=stream --checkpoint=fast \
        --slot="$REPLICATION_SLOT" "${create_slot[@]}"
    rmdir "$PGDATA" 2>/dev/null || true  # an empty directory would swallow the rename
    as_postgres mv -- "$partial" "$PGDATA"
    say "clone complete"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    clone_primary
fi

exec docker-entrypoint.sh "$@"
