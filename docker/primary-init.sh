#!/bin/bash
# Replication set-up of the primary: runs ONCE, when its data directory is first created.
#
# Mounted into /docker-entrypoint-initdb.d/ of the official postgres image, whose entrypoint
# runs it as the postgres user against a temporary, socket-only server after initdb and
# CREATE DATABASE. The entrypoint executes it when it is executable and sources it
# otherwise, so it must work both ways: no `exit`, no `set -u` (that would leak into the
# entrypoint's own shell), errors stop it through the entrypoint's `set -e`.
#
# An existing data volume is never touched again: change REPLICATION_PASSWORD on a running
# cluster with ALTER ROLE, or start over with `docker compose down -v`.
set -e

: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD must be set (the replica service uses it)}"

# A role that may only replicate: the replica never holds the superuser's password.
# The password goes through a psql variable (:'password' quotes it), never through the shell.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    --set=password="$REPLICATION_PASSWORD" <<'EOSQL'
CREATE ROLE replicator WITH LOGIN REPLICATION PASSWORD :'password';
EOSQL

# The entrypoint's own rule (`host all all all scram-sha-256`) does not cover replication
# connections: the "all" database keyword never matches them. Read at the real start, which
# follows this script.
cat >> "$PGDATA/pg_hba.conf" <<'EOHBA'

# Streaming replication for the replica service (pg_basebackup, then its WAL receiver).
host replication replicator all scram-sha-256
EOHBA
