# syntax=docker/dockerfile:1
#
# The operator's image: one static binary (and its CycloneDX SBOM) on an empty base, running as uid 65532, no shell.
#
#   docker build -t ghcr.io/qlik-license-reclaimer/qlik-license-reclaimer:0.1.0 .
#
# The same content as scripts/build-image.sh builds without a daemon (buildah; its Containerfile is this file's last
# stage, and a test keeps the two in step). The builder runs scripts/build-release.sh: `cargo build --release
# --locked` for the musl target, statically linked, so the image needs no libc. Time zones need no tzdata: jiff
# bundles the IANA database. Trust needs no CA bundle: Qlik's root comes from the policy's Secret, the API server's
# from the ServiceAccount mount, and the public roots of e-mail and webhooks are bundled in the binary.
#
# The builder compiles for its own architecture: build on an arm64 builder (or with --platform linux/arm64 under
# emulation) for an arm64 image.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS builder
# musl-tools: the musl C compiler that ring's C and assembly code is built with; python3 writes the SBOM.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    bin="$(scripts/build-release.sh)" \
 && cp "$bin" /qlik-license-reclaimer \
 && /qlik-license-reclaimer --version \
 && python3 scripts/sbom.py "$(uname -m)-unknown-linux-musl" > /sbom.cdx.json

FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="qlik-license-reclaimer" \
      org.opencontainers.image.description="Kubernetes operator that reclaims Qlik Sense Enterprise licences from inactive users" \
      org.opencontainers.image.source="https://github.com/qlik-license-reclaimer/qlik-license-reclaimer" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /qlik-license-reclaimer /usr/local/bin/qlik-license-reclaimer
COPY --from=builder /sbom.cdx.json /usr/share/doc/qlik-license-reclaimer/sbom.cdx.json
USER 65532:65532
# /metrics, /healthz and /readyz of `controller`.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/qlik-license-reclaimer"]
CMD ["controller"]
