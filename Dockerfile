# syntax=docker/dockerfile:1
#
# agentd's container image: a release build in the official Rust image, run on
# distroless/cc. Needs BuildKit (the default builder since Docker 23):
#
#   docker build -t agentd:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# .ci/check-dockerfile lints this file and checks it against the repository:
# every COPY source, the binary's name, the runtime contract below, and that
# Cargo accepts the two source trees the build stage assembles. It does not
# build the image.

# ---- build ------------------------------------------------------------------
# The Rust minor version is Cargo.toml's rust-version. Bookworm because the
# runtime stage is Debian 12: a binary linked against a newer glibc (trixie's)
# would refuse to start on bookworm's.
# The slim variant brings gcc and libc6-dev, which is all the C this build
# compiles: aws-lc-sys uses its cc builder (no cmake, clang or Go), ring,
# zstd-sys and qdrant-edge's SIMD kernels are plain C, and the protos compile
# with protox (no protoc). Hence no apt-get, and no versions to pin.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /build
# Cargo.toml's release profile keeps symbols; the image does not need them.
# Measured on an x86_64 release build: 86 MB with symbols, 66 MB without. A
# panic still prints its message and location; a backtrace loses names.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols

# Dependency layer: compile every dependency against stub sources, so that a
# change to agentd's own code rebuilds agentd alone; this layer is rebuilt only
# when a manifest or the lockfile changes. Cargo refuses to load the workspace
# without each member's manifest and the targets it infers (benches/); the
# other stubs stand in for the declared targets, and a stub build.rs makes the
# build dependencies (protox, tonic-prost-build) part of this layer.
# The same step lays out the two paths the runtime stage copies (rootfs/).
# Relative paths only: .ci/check-dockerfile runs this step in a scratch copy to
# show that Cargo accepts the stubbed workspace with the locked lockfile.
RUN mkdir -p src benches tests/api crates/mock-llm/src crates/test-redis/src \
 && for f in build.rs src/main.rs benches/hot_paths.rs tests/api/main.rs \
        crates/mock-llm/src/main.rs; do echo 'fn main() {}' > "$f"; done \
 && touch src/lib.rs crates/mock-llm/src/lib.rs crates/test-redis/src/lib.rs \
 && mkdir -p rootfs/etc/agentd rootfs/var/lib/agentd \
 && printf '%s\n' \
      '# agentd reads this file (AGENTD_CONFIG) over its embedded defaults.' \
      '# It is empty in the image: mount the real configuration here.' \
      > rootfs/etc/agentd/agentd.toml
COPY Cargo.toml Cargo.lock ./
COPY crates/mock-llm/Cargo.toml crates/mock-llm/
COPY crates/test-redis/Cargo.toml crates/test-redis/
# The registry cache mount keeps downloaded crates across builds on one
# builder; the compiled dependencies live in this layer, so they also survive
# in a layer cache exported to CI (cache mounts are not exported).
# sharing=locked: concurrent builds on one builder take turns with the cache
# instead of unpacking the same crates into it at once; Cargo's own lock
# ($CARGO_HOME/.package-cache) is outside the mount, so it cannot see the other
# build.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo build --release --locked --bin agentd

# The real sources: what the agentd binary compiles from (its dep-info lists
# them; .ci/check-dockerfile compares). tests/, benches/ and the two member
# crates stay stubs, since `--bin agentd` builds none of them.
COPY build.rs ./
COPY config/default.toml config/
COPY proto/ proto/
COPY src/ src/
# The commit recorded in agentd_build_info. The build context has no .git, so
# build.rs takes it from AGENTD_GIT_COMMIT. Declared after the dependency
# layer so that a new commit does not invalidate it.
ARG REVISION=""
# touch: COPY keeps the files' modification times, usually older than the
# stub build above; Cargo would then see nothing new and keep the stubs.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    touch build.rs src/lib.rs src/main.rs \
 && AGENTD_GIT_COMMIT="${REVISION}" cargo build --release --locked --bin agentd

# ---- runtime ----------------------------------------------------------------
# distroless/cc on Debian 12: glibc and libgcc (the binary needs libc, libm
# and libgcc_s, nothing else), CA certificates and tzdata; no shell and no
# package manager. The CA certificates are needed: every TLS client in agentd
# (reqwest through rustls-platform-verifier, redis and tonic through
# rustls-native-certs) trusts the system's roots in /etc/ssl/certs.
# Kubernetes probes and `helm test` run `agentd health`, so no shell is needed;
# debian:bookworm-slim would add a shell, apt and their CVEs for nothing.
# The :nonroot tag differs from :latest only in its default user, which USER
# below replaces. A release pipeline should pin the digest (@sha256:...).
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=""
ARG REVISION=""
ARG SOURCE="https://github.com/agentd/agentd"
LABEL org.opencontainers.image.title="agentd" \
      org.opencontainers.image.description="Production AI agent service over gRPC" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

COPY --from=builder /build/target/release/agentd /usr/local/bin/agentd
# Owned by root: the process reads its configuration and never writes it.
COPY --from=builder /build/rootfs/etc/agentd/ /etc/agentd/
# The only path agentd writes to (redb sessions; the embedded Qdrant's
# segments and its temporary files, which it keeps inside its own directory).
# Nothing is written to /tmp or $HOME, so the container runs with a read-only
# root filesystem. COPY --chown also owns the directory it creates.
COPY --from=builder --chown=10001:10001 /build/rootfs/var/lib/agentd/ /var/lib/agentd/

# Configuration is layered: embedded defaults, then the AGENTD_CONFIG file,
# then AGENTD__SECTION__KEY variables, which win over the file.
# - AGENTD_CONFIG names a file that is empty here, so `docker run IMAGE` starts
#   on the defaults (a missing file would be a start-up error, exit 64). The
#   Helm chart mounts its rendered ConfigMap over /etc/agentd and passes
#   secrets as mounted files or variables.
# - The defaults bind gRPC (50051) and metrics (9464) to 127.0.0.1, reachable
#   only from inside the container (`docker exec CONTAINER agentd health`
#   works). Binding 0.0.0.0 requires auth.enabled with keys, which only a real
#   configuration supplies, so the image sets no listener address: it starts
#   cleanly and opens no unauthenticated port.
# - The data dir is set here, not in the file, because it is where the image
#   keeps its writable directory and where the chart mounts the volume. Being a
#   variable, it overrides storage.data_dir in any mounted file.
# - MALLOC_ARENA_MAX=2: the README's memory advice (Configuration) for glibc's
#   allocator; two arenas cut an idle open stream's RSS from 20.0 to 18.7 KB.
ENV AGENTD_CONFIG=/etc/agentd/agentd.toml \
    AGENTD__STORAGE__DATA_DIR=/var/lib/agentd \
    MALLOC_ARENA_MAX=2

# A fixed numeric UID and GID with no passwd entry: Kubernetes' runAsNonRoot
# can verify a number, and the chart's securityContext uses the same 10001.
USER 10001:10001
# gRPC, the plaintext health-only listener (used when TLS is on), metrics.
EXPOSE 50051 50052 9464
# SIGTERM starts the drain: health turns NOT_SERVING for server.drain_delay
# (5s), then in-flight calls get server.shutdown_grace (30s). `docker stop`
# waits 10s by default; give it `--time 40` to let the drain finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["agentd"]
CMD ["serve"]
