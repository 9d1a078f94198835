# syntax=docker/dockerfile:1
#
# Weir job image.
#
#   docker build --build-arg JOB=demo -t weir-demo .
#
# Every main package under cmd/ is compiled into a static binary named after
# its folder (cmd/demo -> demo, cmd/weir -> weir) and installed in
# /usr/local/bin. The JOB build arg picks the one the container runs: it is
# linked as /usr/local/bin/weir-job, the image entrypoint. The runtime image
# is distroless (no shell, no package manager) and runs as uid/gid 65532.
#
# Runtime configuration is environment-driven (WEIR_BROKERS, WEIR_GROUP,
# WEIR_METRICS_ADDR, WEIR_STATE_DIR). Port 9464 serves /metrics, /healthz and
# /readyz. There is no HEALTHCHECK: distroless has no shell or curl, so probe
# those endpoints from outside (Kubernetes probes, see deploy/kubernetes/).

ARG GO_VERSION=1.26

# ---------------------------------------------------------------------------
# Build stage: runs on the build host's platform and cross-compiles for the
# target platform, so `docker buildx build --platform linux/amd64,linux/arm64`
# does not go through emulation.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build

ARG TARGETOS
ARG TARGETARCH
ARG JOB=demo

ENV CGO_ENABLED=0 \
    GOFLAGS=-buildvcs=false

WORKDIR /src

# Module download is its own layer: it only reruns when go.mod/go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS="${TARGETOS:-linux}" GOARCH="${TARGETARCH}" \
    go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/...

# Fail the build early, with the list of available jobs, if JOB names no
# binary; then link the chosen one as the entrypoint. Also prepare the state
# directory so a volume mounted there inherits the nonroot owner.
RUN set -eu; \
    if [ ! -x "/out/${JOB}" ]; then \
        echo "JOB=${JOB}: no binary built from cmd/${JOB}; available: $(ls /out | tr '\n' ' ')" >&2; \
        exit 1; \
    fi; \
    ln -s "${JOB}" /out/weir-job; \
    mkdir -p /state

# ---------------------------------------------------------------------------
# Runtime stage.
FROM gcr.io/distroless/static-debian12:nonroot

ARG JOB=demo

LABEL org.opencontainers.image.title="weir-${JOB}" \
      org.opencontainers.image.description="Weir stream processing job: ${JOB}" \
      org.opencontainers.image.source="https://github.com/weirstream/weir"

COPY --from=build /out/ /usr/local/bin/
COPY --from=build --chown=65532:65532 /state /var/lib/weir

ENV WEIR_JOB=${JOB} \
    WEIR_METRICS_ADDR=:9464 \
    WEIR_STATE_DIR=/var/lib/weir

USER 65532:65532

# Prometheus metrics, /healthz (liveness) and /readyz (readiness).
EXPOSE 9464

# SIGTERM (the default) lets the job finish its in-flight checkpoint and
# commit offsets; give it time to do so (compose stop_grace_period,
# Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM

ENTRYPOINT ["/usr/local/bin/weir-job"]
