# syntax=docker/dockerfile:1
# renku-env-operator: build a wheel, install it with the pinned dependencies into a virtualenv,
# and copy only that virtualenv into a clean runtime image that runs as a non-root user and
# needs no writable root filesystem (the Helm chart mounts an emptyDir at /tmp).
#
#   docker build -t renku-env-operator:dev --build-arg VERSION=0.1.0 \
#     --build-arg REVISION=$(git rev-parse HEAD) .

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements.lock pyproject.toml README.md ./
COPY operator ./operator
# The wheel, installed with every dependency pinned by the lock. The lock is a constraints file:
# only what the wheel needs is installed, never the development tools the lock also pins.
# Then the venv is trimmed to what runs (measured in the image: 188 MB -> 78 MB; .ci/image.sh runs the result):
# - pip and setuptools: install tools, nothing imports them at run time;
# - kubernetes/aio (68 MB): the client's asyncio twin; the operator and kopf use only the
#   synchronous kubernetes.client, and nothing imports kubernetes.aio;
# - kubernetes' .py sources (33 MB of generated models and APIs, mostly docstrings): the package
#   runs from its .pyc files alone (compiled next to the sources, the layout Python imports
#   without them). The operator never loads the generated APIs and models (clients/kube.py
#   builds its requests; kubernetes.client loads them lazily), but the bytecode stays: kopf and
#   kubernetes.config import from the package, and 11 MB is not worth a half-installed package.
#   Tracebacks inside the client show no source lines.
# Bytecode is compiled here, unchecked against sources: the runtime cannot write it, and copied
# files need not keep their timestamps.
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-compile --constraint requirements.lock /wheels/*.whl \
    && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
    && site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
    && rm -rf "$site/kubernetes/aio" \
    && /opt/venv/bin/python -m compileall -q -b --invalidation-mode unchecked-hash "$site/kubernetes" \
    && find "$site/kubernetes" -name '*.py' -delete \
    && /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /opt/venv/lib \
    && /opt/venv/bin/python -c 'import kubernetes.client, kubernetes.config, renku_env_operator.runner'

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="renku-env-operator" \
      org.opencontainers.image.description="Kubernetes operator that manages Renku global session environments as code" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/SwissDataScienceCenter/renku-env-operator" \
      org.opencontainers.image.vendor="Swiss Data Science Center"
# No .pyc writes at run time (the root filesystem is read-only: they are compiled at build time),
# logs unbuffered, HOME on the only writable mount.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PATH=/opt/venv/bin:${PATH}
# A named user: getpass.getuser() (kopf's peer identity without POD_ID) needs a passwd entry.
# Not "operator": Debian's base-passwd already has that group and user (gid 37).
RUN groupadd --system --gid 10001 renku-env-operator \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin renku-env-operator
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
WORKDIR /tmp
# 8080: kopf's liveness endpoint (/healthz); 9090: Prometheus metrics (/metrics).
EXPOSE 8080 9090
ENTRYPOINT ["renku-env-operator"]
CMD ["run"]
