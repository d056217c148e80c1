# syntax=docker/dockerfile:1
#
# The operator's image: one static binary on distroless/static, running as nonroot (uid 65532), no shell.
#
#   docker build -t ghcr.io/qlik-license-reclaimer/qlik-license-reclaimer:0.1.0 .
#
# The builder runs scripts/build-release.sh, which builds the same binary outside Docker (the tests check that binary
# when QLR_RELEASE_TESTS=1): `cargo build --release --locked` for the musl target, statically linked. A static binary
# needs no libc in the image, so the base is distroless/static (about 2 MB) rather than distroless/cc (glibc and
# libgcc, about 23 MB): the image stays well under 40 MB. Time zones need no tzdata package: jiff bundles the IANA
# database (tzdb-bundle-always). Trust needs no CA bundle either: Qlik's root comes from the policy's Secret, the API
# server's from the ServiceAccount mount.
#
# The builder compiles for its own architecture: build on an arm64 builder (or with --platform linux/arm64 under
# emulation) for an arm64 image.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS builder
# musl-tools: the musl C compiler that ring's C and assembly code is built with.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    bin="$(scripts/build-release.sh)" \
 && cp "$bin" /qlik-license-reclaimer \
 && /qlik-license-reclaimer --version

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="qlik-license-reclaimer" \
      org.opencontainers.image.description="Kubernetes operator that reclaims Qlik Sense Enterprise licences from inactive users" \
      org.opencontainers.image.source="https://github.com/qlik-license-reclaimer/qlik-license-reclaimer" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /qlik-license-reclaimer /usr/local/bin/qlik-license-reclaimer
USER 65532:65532
# /metrics, /healthz and /readyz of `controller`.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/qlik-license-reclaimer"]
CMD ["controller"]
