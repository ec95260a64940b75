# syntax=docker/dockerfile:1
# The OMNIX gRPC service: the wheel is built with maturin in a full toolchain stage, and only
# the wheel and its dependencies reach the slim runtime (no compiler, no sources, non-root).
#
#   docker build -t omnix-recs:0.1.0 .
#   docker run --rm -p 50051:50051 -e OMNIX_INSECURE=true omnix-recs:0.1.0
#
# Kubernetes manifests that run this image: deploy/kubernetes/ (README "Many hosts").

ARG PYTHON_VERSION=3.11
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS rust

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# The Rust toolchain from the official image, over the same Debian release.
COPY --from=rust /usr/local/cargo /usr/local/cargo
COPY --from=rust /usr/local/rustup /usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo RUSTUP_HOME=/usr/local/rustup PATH=/usr/local/cargo/bin:$PATH
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir "maturin>=1.7,<2"
WORKDIR /src
# Manifests first: the dependency build is cached until Cargo.lock changes.
COPY Cargo.toml Cargo.lock pyproject.toml README.md ./
COPY rust_core ./rust_core
COPY python ./python
COPY proto ./proto
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    maturin build --release --locked --out /dist

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/omnix/bin:$PATH
RUN useradd --system --uid 10001 --home-dir /var/lib/omnix --create-home omnix
COPY --from=build /dist/*.whl /tmp/wheels/
RUN python -m venv /opt/omnix \
    && /opt/omnix/bin/pip install --no-cache-dir /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels
USER 10001
WORKDIR /var/lib/omnix
# Local state (the SQLite default, model copies) under the working directory; in Kubernetes
# the store is DynamoDB and models come from S3 (deploy/kubernetes/configmap.yaml).
ENV OMNIX_GRPC_HOST=0.0.0.0 OMNIX_GRPC_PORT=50051 OMNIX_MODEL_CACHE_DIR=/var/lib/omnix/model-cache
EXPOSE 50051 9100
# `omnix serve` turns health NOT_SERVING on SIGTERM, then drains (python/omnix_recs/server.py).
ENTRYPOINT ["omnix"]
CMD ["serve"]
