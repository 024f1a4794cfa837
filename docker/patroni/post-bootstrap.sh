#!/bin/sh
# Patroni's post_bootstrap hook: runs once, on the member that initialised the cluster, with
# a superuser connection URL as its argument. Creates the service's database; migrations
# (compose.patroni.yaml's migrate service) create its tables.
set -eu
psql --no-psqlrc -v ON_ERROR_STOP=1 "$1" -c 'CREATE DATABASE app'
