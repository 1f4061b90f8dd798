# q-operator image: the operator and its dependencies in a virtualenv on a slim Python base.
# Build from the repository root:  docker build -t q-operator:0.1.0 .
# The base is a build argument so that a machine without registry access can supply its own
# (`make image` builds one from Debian's packages, see docs/install.md). The default is the published
# base, pinned by exact version tag; pin it by digest too (python:3.11.11-slim-bookworm@sha256:...)
# in your registry mirror if you need bit-for-bit reproducible builds.
ARG BASE=python:3.11.11-slim-bookworm

# --- build: make the wheel from the repo, install it with its dependencies into /opt/venv ---
FROM ${BASE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# .dockerignore keeps the stand-ins, the sandbox and the demo out: the image runs the operator only.
COPY pyproject.toml README.md ./
COPY operator/ ./operator/

# The project's own dependency pins (pyproject.toml) decide every version installed here. The
# virtualenv is made without pip and filled by the base's pip (`--python` points it at the virtualenv):
# it holds the operator and what the operator requires, nothing to remove afterwards.
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/venv \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir /wheels/*.whl \
    && /opt/venv/bin/q-operator --help > /dev/null

# --- runtime: only the virtualenv, run as an unprivileged user ---
FROM ${BASE}

LABEL org.opencontainers.image.title="q-operator" \
      org.opencontainers.image.description="Kubernetes operator that manages AWS resources as custom resources, one kind per resource type" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"

# A named user (not only a uid) so that getpass/pwd lookups inside libraries work. The base's pip,
# setuptools and wheel built the image; it runs without them, so they go, each the way the base
# installed it: Debian's packages by dpkg (the base `make image` makes, docs/install.md), the
# published base's by pip, with the `pip` link that base adds to pip3.
RUN groupadd --system --gid 65532 nonroot \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin nonroot \
    && if [ "$(dpkg-query --show --showformat='${db:Status-Status}' python3-pip 2>/dev/null)" = installed ]; then \
        dpkg --purge python3-pip python3-setuptools python3-wheel python3-pkg-resources; \
    elif python -m pip --version > /dev/null 2>&1; then \
        python -m pip uninstall --yes pip setuptools wheel && rm -f /usr/local/bin/pip; \
    fi

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp

USER 65532:65532
WORKDIR /tmp

# 8080: Prometheus metrics; 8081: kopf liveness (/healthz). Kubernetes probes replace HEALTHCHECK.
EXPOSE 8080 8081

ENTRYPOINT ["q-operator"]
CMD ["run", "--all-namespaces"]
