# syntax=docker/dockerfile:1
# The Vigie gateway: Debian 12 (bookworm) with Node 20, the mediasoup worker
# built from the npm package's sources against Debian's libraries
# (scripts/setup.sh, scripts/mediasoup-worker/), and the browser SDK bundle.
#
#   docker compose build vigie
#
# The worker build takes 3 to 8 minutes on 2 cores. It is kept in a BuildKit
# cache mount, so later builds of any source change reuse it.

# ---- build: Debian build tools, npm packages, mediasoup worker, SDK bundle ----
FROM node:20.20.2-bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
# Runtime libraries, and the build dependencies setup.sh would otherwise install itself.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libuv1 libssl3 libsrtp2-1 libabsl20220623 \
      build-essential pkg-config meson ninja-build python3 \
      libuv1-dev libssl-dev libsrtp2-dev libabsl-dev libflatbuffers-dev flatbuffers-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# mediasoup's postinstall would download a prebuilt worker; with MEDIASOUP_WORKER_BIN set it skips.
# npm install from the lockfile, not npm ci: see scripts/setup.sh (chdb optional builds).
RUN MEDIASOUP_WORKER_BIN=/nonexistent npm install --no-save --no-audit --no-fund --loglevel=error
COPY . .
# setup.sh finds the packages and node_modules in place, builds the worker into
# $XDG_CACHE_HOME/vigie (the cache mount), compiles the gateway into dist/server
# and bundles the SDK into dist/public.
RUN --mount=type=cache,target=/root/.cache/vigie \
    XDG_CACHE_HOME=/root/.cache bash scripts/setup.sh runtime \
 && mkdir -p /opt/vigie/cache/vigie \
 && cp /root/.cache/vigie/mediasoup-worker-* /opt/vigie/cache/vigie/ \
 && npm prune --omit=dev --no-audit --no-fund --loglevel=error

# ---- runtime: the same base, runtime libraries only ----
FROM node:20.20.2-bookworm
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends libuv1 libssl3 libsrtp2-1 libabsl20220623 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
# The worker is found at $XDG_CACHE_HOME/vigie/mediasoup-worker-<version>-<platform>-<arch> (src/media/workerBinary.ts).
ENV NODE_ENV=production \
    XDG_CACHE_HOME=/opt/vigie/cache \
    VIGIE_DATA_DIR=/var/lib/vigie \
    VIGIE_HOST=0.0.0.0 \
    VIGIE_PORT=8080
COPY --from=build /opt/vigie/cache /opt/vigie/cache
COPY --from=build --chown=node:node /app /app
RUN mkdir -p /var/lib/vigie && chown node:node /var/lib/vigie
WORKDIR /app
USER node
EXPOSE 8080/tcp 44444-44445/udp 44444-44445/tcp
VOLUME ["/var/lib/vigie"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
CMD ["node", "--enable-source-maps", "dist/server/main.js"]
