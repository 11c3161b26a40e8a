# syntax=docker/dockerfile:1
# gpt-load image: the admin SPA built with Node, the release binary built with Rust, both shipped on
# debian:bookworm-slim as a non-root user. Build: `docker build -t gpt-load .`
# The binary is the entrypoint, so its subcommands run in the same image, e.g.
# `docker run --rm -v ./data:/app/data gpt-load migrate-keys --to NEW` (service stopped first).

# ---- 1. Admin SPA (web-admin/ -> web-admin/dist) -------------------------------------------------
FROM node:20-bookworm-slim AS web
WORKDIR /build/web-admin
# `web-admi[n]` is a wildcard on purpose: BuildKit accepts a wildcard that matches nothing, so a tree
# without the admin UI still builds (the binary then embeds an empty folder and serves no UI).
COPY web-admi[n] ./
RUN --mount=type=cache,target=/root/.npm \
    if [ -f package.json ]; then \
      npm ci --no-audit --no-fund && npm run build; \
    else \
      echo "web-admin/package.json not found: building without the admin UI"; \
    fi \
    && mkdir -p dist

# ---- 2. Release binary ---------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /build
# Every workspace member must be present for cargo to resolve the workspace, hence tests/mock-upstream.
COPY Cargo.toml Cargo.lock build.rs ./
COPY actors ./actors
COPY tests/mock-upstream ./tests/mock-upstream
COPY migrations ./migrations
COPY src ./src
COPY --from=web /build/web-admin/dist ./web-admin/dist
# The target dir is a cache mount (kept between builds, absent from the image), so the binary is
# copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin gpt-load \
    && install -m 0755 target/release/gpt-load /build/gpt-load \
    && strip --strip-debug /build/gpt-load

# ---- 3. Runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# Versions are not pinned: bookworm's security updates replace old package versions, so a pin would
# break the build after the next update (hadolint DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 gpt-load \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin gpt-load \
    && mkdir -p /app/data \
    && chown 10001:10001 /app/data
WORKDIR /app
COPY --from=build /build/gpt-load /app/gpt-load
# DATABASE_DSN defaults to ./data/gpt-load.db relative to WORKDIR, i.e. this volume.
VOLUME ["/app/data"]
EXPOSE 3001
# A numeric user lets Kubernetes verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
# No curl or wget in the image (fewer packages, fewer CVEs): bash's /dev/tcp sends the request and
# the status line must say 200. 127.0.0.1 because HOST defaults to 0.0.0.0.
HEALTHCHECK --interval=30s --timeout=10s --start-period=40s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-3001} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/app/gpt-load"]
CMD ["serve"]
