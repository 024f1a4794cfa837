# The service image: uvicorn serving project.asgi:application. compose.yaml also runs the
# one-shot migrations from it. A second target, `devstack`, adds the development equipment
# compose.yaml runs beside the service (the demo tips upstream): never in the service image.
#
#   docker build -t resilient-django .                  # the service (the last stage)
#   docker build --target devstack -t resilient-django-devstack .
#   docker run -p 8000:8000 -e DJANGO_ALLOWED_HOSTS=... -e DATABASE_URL=... resilient-django
#
# `make image` builds it on a base made from Debian's packages instead (no image registry
# needed: devstack/image/, docs/image.md), passing --build-arg BASE_IMAGE.

# Any image with Python 3.11, its venv module and the shadow tools (useradd): the official
# python image (python3 in /usr/local/bin), or Debian bookworm's own python3 (/usr/bin).
# Nothing below names the interpreter's path: `python3 -m venv`, then the venv's on PATH.
# Same base in both stages: the venv's interpreter is a symlink to the base's python3.
ARG BASE_IMAGE=python:3.11-slim

# --- builder: the project and its dependencies in a self-contained venv -----------------
FROM ${BASE_IMAGE} AS builder

# pip byte-compiles what it installs (the runtime user could not write __pycache__ later).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, in their own layer, so a source change does not download them again.
# From the service lock (`make lock`): the library's and the `service` extra's requirements
# and theirs, each at one version with its hashes, never another extra (the sync twin's, the
# scenarios', dev). --require-hashes: pip refuses a file whose hash differs and a package
# the lock does not pin. Every one ships wheels for CPython on Linux (x86-64 and arm64; the
# lock holds the hashes of every file of a version), so no compiler is needed.
COPY requirements/service.txt /tmp/service-lock.txt
RUN pip install --require-hashes -r /tmp/service-lock.txt

# Then the service's source alone (the context is already trimmed by .dockerignore): not the
# project's wheel, which also carries the development equipment (devstack/, loadtests/).
COPY . .
RUN mkdir /runtime \
    && cp -a project app resilience_async workers manage.py /runtime/


# --- runtime: slim, no build tools, non-root --------------------------------------------
FROM ${BASE_IMAGE} AS runtime

# PROMETHEUS_MULTIPROC_DIR: prometheus-client's multiprocess mode, one file per server process,
# summed by /metrics. The entrypoint empties it at every start (files of dead processes would
# be counted). DJANGO_SETTINGS_MODULE is left unset on purpose: manage.py and project/asgi.py
# default it to project.settings.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus

# A fixed uid/gid, so volume and file permissions can be planned for outside the image.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

WORKDIR /srv
# The service's source (project/, app/, resilience_async/, workers/, manage.py), owned by
# root and read-only to the app user. manage.py runs from here, and uvicorn and `python -m`
# put /srv first on sys.path.
COPY --from=builder /runtime/ /srv/
COPY docker/entrypoint.sh /usr/local/bin/entrypoint.sh

# Byte-compile at build time: the app user cannot (and, with PYTHONDONTWRITEBYTECODE, does
# not try to) write __pycache__ at run time, so every start would compile again otherwise.
RUN chmod 0755 /usr/local/bin/entrypoint.sh \
    && chmod -R a+rX,go-w /srv \
    && python -m compileall -q /srv \
    && mkdir -p "$PROMETHEUS_MULTIPROC_DIR" \
    && chown app:app "$PROMETHEUS_MULTIPROC_DIR"

USER app:app

EXPOSE 8000

# Liveness only (the event loop answers; no dependency is touched). Python's stdlib: the
# slim image has no curl. The request's Host header is 127.0.0.1, so DJANGO_ALLOWED_HOSTS
# must include 127.0.0.1 (the default does; compose.yaml lists it) or this probe gets a 400.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status == 200 else 1)"]

# uvicorn drains on SIGTERM (readiness fails at once, in-flight requests get 5 s).
STOPSIGNAL SIGTERM

ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
# Worker processes come from WEB_CONCURRENCY, which uvicorn reads itself (default 1).
# --http: httptools with the service's request limits (header and body deadlines, header
# bounds: project/serving.py); behind a proxy, give it the same limits (docs/operations.md).
# --ws none: the service speaks HTTP only; a WebSocket handshake is answered 403.
CMD ["uvicorn", "project.asgi:application", "--host", "0.0.0.0", "--port", "8000", \
     "--http", "project.serving:HttpProtocol", "--ws", "none", "--no-access-log", \
     "--timeout-graceful-shutdown", "5"]


# --- devstack: the service image plus the local environment's demo upstream -------------
# Development equipment for compose.yaml (its `upstream` service); never the default target.
FROM runtime AS devstack
USER root
COPY --from=builder /src/devstack /srv/devstack
RUN chmod -R a+rX,go-w /srv/devstack && python -m compileall -q /srv/devstack
USER app:app
CMD ["python", "-m", "devstack.upstream", "--host", "0.0.0.0", "--port", "8001", "--control-port", "8002"]


# --- service: the default target (the last stage), the runtime stage as it is -----------
FROM runtime AS service
