# codat-exporter container image.
#
#   docker build --build-arg VERSION="$(python3 -c 'import exporter; print(exporter.__version__)')" \
#     -t codat-exporter .
#   docker run --rm -p 8329:8329 codat-exporter run --demo
#
# Build arguments:
#   PYTHON_IMAGE  base image with Python >= 3.11 and the venv module (default: the official slim image).
#                 Both stages use it, so the virtualenv copied between them finds the same interpreter.
#   VERSION       the exporter's version (exporter/__init__.py); required, and checked against the
#                 package so the image label can never disagree with `codat-exporter --version`.
#
# Nothing secret and no configuration is baked in: pass CODAT_API_KEY (or CODAT_API_KEY_FILE) at run
# time and mount a config file at /etc/codat-exporter/config.yaml, then add
# `--config /etc/codat-exporter/config.yaml` (or set CODAT_EXPORTER_CONFIG to that path).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter/ exporter/

# A build secret "pip-ca" (a CA bundle file) is optional: it is only for networks whose TLS is
# intercepted by a proxy, and is mounted for this step only, so it never lands in a layer.
RUN --mount=type=secret,id=pip-ca,required=false \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && python3 -m venv /opt/codat-exporter \
    && /opt/codat-exporter/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && /opt/codat-exporter/bin/pip install --no-cache-dir /wheels/codat_exporter-*.whl

# Declared only here, so a new VERSION value does not invalidate the cached install above.
ARG VERSION=""
RUN built="$(/opt/codat-exporter/bin/python -c 'import exporter; print(exporter.__version__)')" \
    && if [ "${VERSION}" != "${built}" ]; then \
         echo "build argument VERSION='${VERSION}' does not match the package version '${built}';" \
              "build with --build-arg VERSION=${built}" >&2; \
         exit 1; \
       fi


FROM ${PYTHON_IMAGE}

ARG VERSION=""
LABEL org.opencontainers.image.title="codat-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the freshness of Codat companies' synced data" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/codat-exporter/codat-exporter" \
      org.opencontainers.image.documentation="https://github.com/codat-exporter/codat-exporter#readme"

# A fixed numeric uid/gid lets Kubernetes' runAsNonRoot verify the user without reading /etc/passwd.
RUN groupadd --gid 10001 codat-exporter \
    && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /nonexistent \
       --no-create-home --shell /usr/sbin/nologin codat-exporter \
    && mkdir -p /etc/codat-exporter

COPY --from=build /opt/codat-exporter /opt/codat-exporter

# All interfaces of the container's own network namespace (the demo would otherwise keep to
# loopback, unreachable through a published port). This variable beats server.listen_address in
# a config file; to move the port, set it (the health check follows it) rather than the flag.
ENV PATH="/opt/codat-exporter/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CODAT_EXPORTER_LISTEN_ADDRESS=0.0.0.0:8329

USER 10001:10001
EXPOSE 8329

# Exec form (no shell needed) with the image's Python, as slim images have no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; port = os.environ.get('CODAT_EXPORTER_LISTEN_ADDRESS', ':8329').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

ENTRYPOINT ["codat-exporter"]
CMD ["run"]
