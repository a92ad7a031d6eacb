# syntax=docker/dockerfile:1
#
# The one Beep image: the Python subgraphs (the `beep` CLI) and the Hive Gateway router.
#   subgraph:  beep serve <subgraph> --host 0.0.0.0 --port N      (workdir /app)
#   router:    node_modules/.bin/hive-gateway supergraph /app/supergraph/supergraph.graphql
#              (workdir /app/router; configured from BEEP_ROUTER_* / BEEP_JWKS_URL... by gateway.config.ts)
#   migrate:   beep db upgrade
# The Helm chart (helm/beep) sets the command of each container; the image runs as uid 10001 and works
# with a read-only root filesystem (only /tmp needs to be writable).
#
# NOTE: this file has never been built: the machine it was written on has no Docker engine and no
# network beyond package registries. Treat it as a plausible starting point and build it in CI.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# The router's Node: the version router/package.json pins for development machines (node-linux-*).
ARG NODE_IMAGE=node:24.22.3-bookworm-slim

# --- router dependencies (Node) -------------------------------------------------------------------
FROM ${NODE_IMAGE} AS router
WORKDIR /app/router
COPY router/package.json router/package-lock.json ./
# The pinned Node packages are dropped: the image's own Node (NODE_IMAGE, the same version) runs the router.
RUN npm ci --omit=dev --no-audit --no-fund && rm -rf node_modules/node-linux-* node_modules/.bin/node \
    && npm cache clean --force
COPY router/ ./

# --- Python build: install the project into a self-contained virtualenv ---------------------------
FROM ${PYTHON_IMAGE} AS python-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH}
WORKDIR /src
# Only what the wheel is built from (pyproject.toml names README.md as its readme).
COPY pyproject.toml README.md ./
COPY beep/ beep/
COPY db/ db/
COPY media/ media/
COPY subgraphs/ subgraphs/
RUN pip install . && beep --help >/dev/null

# --- runtime ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# Node from the official image (same Debian release, so the same glibc as the prebuilt native
# modules in node_modules, e.g. the gateway's Rust query planner, expect).
COPY --from=router /usr/local/bin/node /usr/local/bin/node
# pg_dump/pg_restore for `beep backup` (the chart's backup CronJob). They must be at least the server's
# major version: for a newer server than Debian's, install that major's client from apt.postgresql.org.
ARG POSTGRES_CLIENT_PACKAGE=postgresql-client
RUN apt-get update && apt-get install -y --no-install-recommends ${POSTGRES_CLIENT_PACKAGE} \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 beep \
    && useradd --system --uid 10001 --gid beep --home-dir /app --no-create-home --shell /usr/sbin/nologin beep
COPY --from=python-build /opt/venv /opt/venv
COPY --from=router /app/router /app/router
COPY supergraph/ /app/supergraph/
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NODE_ENV=production
WORKDIR /app
USER 10001:10001
EXPOSE 4000 4101 4102 4103 4104 4105 4106
CMD ["beep", "--help"]
