# syntax=docker/dockerfile:1
# check=error=true

# Mailgate: a static binary on distroless, run as an unprivileged user.
#   docker build -t mailgate:dev --build-arg VERSION=$(git describe --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) --build-arg BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) .
# The three are stamped into the binary (`mailgate version`), the first two
# into the labels too; .git stays out of the context, so nothing else can.
# The chart in charts/mailgate runs it with a read-only root filesystem.

# The base images go by tag, not digest: this repository's build machine
# reaches no container registry, so no digest could be read and checked here.
# Pin them where the image is built (docker buildx imagetools inspect
# golang:1.26 and gcr.io/distroless/static-debian12:nonroot) as
# golang:1.26@sha256:... and ...:nonroot@sha256:..., and let Renovate or
# Dependabot move the pins.
ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG REVISION=unknown
ARG BUILD_DATE=unknown
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -tags nomsgpack \
      -ldflags="-s -w -X github.com/mailgate/mailgate/app.version=${VERSION} -X github.com/mailgate/mailgate/app.commit=${REVISION} -X github.com/mailgate/mailgate/app.buildDate=${BUILD_DATE}" \
      -o /out/mailgate ./app/cmd/mailgate

# CA certificates, /etc/passwd entries and user 65532 (nonroot), no shell.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mailgate" \
      org.opencontainers.image.description="Multi-tenant mail gateway: HTTP API, transactional outbox on PostgreSQL, River delivery workers" \
      org.opencontainers.image.source="https://github.com/mailgate/mailgate" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/mailgate /mailgate
USER 65532:65532
# 8080: API, /healthz, /readyz. 9090: /metrics, pprof.
EXPOSE 8080 9090
ENTRYPOINT ["/mailgate"]
CMD ["serve"]
