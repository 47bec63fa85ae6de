# syntax=docker/dockerfile:1
#
# The Ikkuna gateway as a container image: a Rust builder stage, then a minimal runtime with
# nothing but the binary, glibc, libgcc and CA certificates (distroless: no shell, no package
# manager).
#
#   docker build -t registry.example.invalid/ikkuna:0.1.0 .
#   docker run --read-only --cap-drop ALL --security-opt no-new-privileges \
#       -v ikkuna-data:/var/lib/ikkuna -v /srv/ikkuna/etc:/etc/ikkuna:ro \
#       -p 8443:8443 -p 127.0.0.1:9090:9090 registry.example.invalid/ikkuna:0.1.0
#
# - Runs as the numeric non-root user 10001:10001 (the UID the Kubernetes manifests in
#   examples/deploy/kubernetes set with runAsUser, and that check.sh compares).
# - Read-only root filesystem friendly: the gateway writes only below its data directory
#   (`store.data_dir`, `/var/lib/ikkuna`, the VOLUME) and, if configured so, the audit file
#   (`audit.file`, e.g. `/var/lib/ikkuna/audit/audit.jsonl`). Mail content is never written.
# - Configuration, certificates and keys are mounted at run time under /etc/ikkuna (keys as
#   files of mode 0600 owned by 10001: the gateway refuses key files others can read). None is
#   baked into the image, and .dockerignore keeps *.key, *.pem and *.secret out of the context.
# - Listeners: 8443 the operator API (TLS), 9090 the admin listener (plain HTTP: /healthz,
#   /readyz, /metrics; never publish it beyond the host or the pod network).
# - No HEALTHCHECK: distroless has no shell or HTTP client to run one with. Orchestrators probe
#   the admin listener instead: liveness GET /healthz, readiness GET /readyz (see
#   examples/deploy/kubernetes/statefulset.yaml). With plain Docker, probe from outside, e.g.
#   `curl -fsS http://127.0.0.1:9090/readyz`.
# - Stopping: SIGTERM drains requests in flight for up to 30 s; give `docker stop -t 45`.
# - The sandbox subcommand is built in by default (`ikkuna sandbox` for evaluation). A production
#   image may leave it out: `--build-arg CARGO_FEATURES=--no-default-features`.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12

# ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# The whole workspace (filtered by .dockerignore): cargo needs every member's manifest.
COPY . .
ARG CARGO_FEATURES=""
# Cache mounts keep the registry and the target directory between builds (BuildKit); the binary
# is copied out of the cache within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ikkuna --bin ikkuna ${CARGO_FEATURES} \
    && install -D -m 0755 target/release/ikkuna /out/usr/local/bin/ikkuna \
    && install -d -m 0700 /out/var/lib/ikkuna /out/var/lib/ikkuna/audit \
    && /out/usr/local/bin/ikkuna --version

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ikkuna" \
      org.opencontainers.image.description="A window onto Finnish authority mail for private digipost operators: consent-checked, streamed, never stored." \
      org.opencontainers.image.licenses="EUPL-1.2"
COPY --from=builder /out/usr/local/bin/ikkuna /usr/local/bin/ikkuna
COPY --from=builder --chown=10001:10001 /out/var/lib/ikkuna /var/lib/ikkuna
USER 10001:10001
WORKDIR /var/lib/ikkuna
VOLUME ["/var/lib/ikkuna"]
# 8443: operator API (TLS); 9090: admin listener (health, readiness, metrics).
EXPOSE 8443/tcp 9090/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ikkuna"]
CMD ["run", "--config", "/etc/ikkuna/ikkuna.toml"]
