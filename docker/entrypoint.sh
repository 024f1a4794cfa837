#!/bin/sh
# Entrypoint of the app image: prepares the process environment, then becomes the command.
set -eu

# prometheus-client's multiprocess mode needs an empty directory at start: files left by
# the processes of a previous run (a restarted container keeps its /tmp) would be summed
# into /metrics as if they were alive. Emptied rather than removed, so this also works when
# the container runs under another uid than the image's app user.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p -- "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
fi

# exec: the command replaces this shell, so it receives the stop signal (SIGTERM) itself.
exec "$@"
