# syntax=docker/dockerfile:1
# vss-server in an image that holds its two static binaries (vss-server, and vss-admin,
# which also answers the health check) and CA certificates, nothing else, and runs as an
# unprivileged user. Build with every backend, or choose:
#   docker build -t vss-server .
#   docker build --build-arg FEATURES=postgres -t vss-server:postgres .
# Configure it with VSS_* variables or a file (docs: bins/vss-server/CONFIG.md); the
# SQLite default keeps its database in the /data volume (/data/vss-data/vss.sqlite3).
# /metrics and the probes are on port 9090, apart from the VSS port (plain HTTP even when
# the VSS port serves TLS). packaging/compose.yaml runs it with PostgreSQL. Checked by
# scripts/test (bins/vss-server/tests/packaging.rs) with hadolint.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-alpine AS build
# musl-dev: static binaries (ring's and SQLite's C code links against musl). Not
# pinned: the package follows the Alpine release of the rust image, pinned above.
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
ARG FEATURES=sqlite,postgres,redis,dynamodb
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p vss-server --no-default-features --features "${FEATURES}" \
    && install -D -m 0555 target/release/vss-server /out/vss-server \
    && install -D -m 0555 target/release/vss-admin /out/vss-admin \
    && install -d -m 0700 -o 65532 -g 65532 /out/data

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/vss-server /out/vss-admin /
# COPY makes files root's unless told: the data directory must be the server user's.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
# Off loopback the server needs authentication (or VSS_ALLOW_UNAUTHENTICATED=true).
# No backend setting here: the one you give chooses it (SQLite when none).
ENV VSS_BIND_ADDRESS=0.0.0.0:8080 \
    VSS_METRICS_BIND_ADDRESS=0.0.0.0:9090 \
    VSS_LOG_FORMAT=json
EXPOSE 8080 9090
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/vss-admin", "probe", "http://127.0.0.1:9090/ready"]
ENTRYPOINT ["/vss-server"]
