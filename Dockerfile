# syntax=docker/dockerfile:1
# engage-consumer container image.
#
# Two stages: "build" installs the runtime dependencies pinned in requirements.lock (exact
# versions, every file checked against its hash) into a self-contained virtualenv, then turns the
# source into a wheel (the event schemas ride inside it as consumer/_schemas, see pyproject's
# force-include) and installs that wheel alone on top; "runtime" is a fresh slim Python with only
# that virtualenv copied in, so no compiler, pip cache or source tree reaches the image that runs
# in production. Two builds of one commit get the same dependencies: nothing is resolved here.
#
#   docker build -t engage-consumer:0.1.0 .
#   docker run --rm -e KAFKA_BOOTSTRAP_SERVERS=... -e INPUT_TOPICS=... \
#     -e ENGAGE_BASE_URL=... -e ENGAGE_API_KEY=... -p 8080:8080 engage-consumer:0.1.0
#
# Both stages must use the same Python build: the virtualenv's interpreter is a symlink to the
# base image's /usr/local/bin/python3.11. Pin the tag to a digest (python:3.11-slim-bookworm@sha256:…)
# in your registry mirror for reproducible builds.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The dependencies first, from the lock alone, so this layer is rebuilt only when the lock
# changes, not on every change to the source. `./dev lock` regenerates the lock (its header names
# the uv command); tests/test_lock.py fails when it no longer satisfies pyproject.toml.
COPY requirements.lock ./
# Every locked dependency ships manylinux wheels for CPython 3.11 (the lock is resolved from
# wheels only), so the slim image needs no compiler here; --only-binary makes a missing wheel
# fail loudly instead of compiling, --require-hashes refuses any file whose hash is not locked.
RUN python -m venv /opt/engage-consumer \
 && /opt/engage-consumer/bin/pip install --require-hashes --only-binary=:all: -r requirements.lock
# Only what the wheel is built from (.dockerignore keeps the rest out of the context).
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY consumer ./consumer
# --no-deps: the dependencies are the locked ones already installed; pip check then fails the
# build if they do not satisfy what the wheel declares (a lock that lags pyproject.toml).
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/engage-consumer/bin/pip install --no-deps /wheels/*.whl \
 && /opt/engage-consumer/bin/pip check \
 && /opt/engage-consumer/bin/pip uninstall --yes pip \
 && /opt/engage-consumer/bin/python -c "import importlib.resources as r; \
      assert r.files('consumer').joinpath('_schemas/order-event.schema.json').is_file(), 'schemas missing'" \
 && /opt/engage-consumer/bin/engage-consumer --help >/dev/null

FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only verify a numeric USER, and the Helm
# chart's securityContext uses the same 10001.
RUN groupadd --system --gid 10001 engage \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin engage
COPY --from=build /opt/engage-consumer /opt/engage-consumer
# PYTHONUNBUFFERED: JSON log lines reach the container log as they are written, not on exit.
# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only in the chart; pip compiled at install.
ENV PATH=/opt/engage-consumer/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HTTP_PORT=8080
LABEL org.opencontainers.image.title="engage-consumer" \
      org.opencontainers.image.description="Kafka order-lifecycle events to Voyado Engage Orders v3, actions gated on versionTag" \
      org.opencontainers.image.licenses="MIT"
USER 10001:10001
WORKDIR /tmp
# /livez, /readyz and /metrics (HTTP_PORT).
EXPOSE 8080
# The consumer runs as PID 1 and installs its own SIGTERM handler (drain, flush, commit, exit 0),
# so no init shim sits in between and SIGTERM reaches it directly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["engage-consumer"]
CMD ["run"]
