#!/bin/sh
# Patroni's bootstrap.post_bootstrap, run once on the member that initialised the cluster:
# the service's role and database (the service should not connect as the superuser).
# $1: the superuser's connection string, which Patroni appends.
set -eu
psql -v ON_ERROR_STOP=1 -v app_password="$APP_DB_PASSWORD" -d "$1" <<'SQL'
CREATE ROLE app LOGIN PASSWORD :'app_password';
CREATE DATABASE app OWNER app;
SQL
