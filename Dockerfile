# The shrike image: a static binary on an empty base.
#
#   docker build -t shrike --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg BUILD_TIME="$(date -u +%FT%TZ)" .
#
# The builder is pinned to the toolchain go.mod names, so the image is built
# with the Go the tests ran on. The binary is static (CGO_ENABLED=0), without
# local paths (-trimpath), and stamped through -ldflags as `shrike --version`
# reads it (main.version, main.buildTime); the build context holds no .git
# (.dockerignore), so the version comes from VERSION rather than VCS stamping.
# The run stage is scratch: no shell, no package manager, nothing but the
# binary, the CA roots for TLS to Kafka, Redis and the API, and a numeric
# non-root user. `shrike health` is the HEALTHCHECK, since there is no curl.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first: a change to the sources alone reuses this layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
ARG BUILD_TIME=""
ARG TARGETOS=linux
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.buildTime=${BUILD_TIME}" \
      -o /out/shrike ./cmd/shrike \
 && /out/shrike --version
# The run stage has no mkdir: lay out its folders here, owned by the user
# that runs shrike.
RUN mkdir -p /rootfs/etc/shrike/rules /rootfs/tmp \
 && chown -R 65532:65532 /rootfs/etc/shrike \
 && chmod 1777 /rootfs/tmp \
 && echo 'shrike:x:65532:65532:shrike:/:/sbin/nologin' >/rootfs/etc/passwd \
 && echo 'shrike:x:65532:' >/rootfs/etc/group

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /rootfs/ /
COPY --from=build /out/shrike /usr/local/bin/shrike
USER 65532:65532
# deploy/docker/shrike.yaml: listeners on every interface of the container
# (the REST API with /healthz and /readyz, gRPC, the admin listener with
# /metrics), rulesets from /etc/shrike/rules, JSON logs. SHRIKE_* variables
# override it, flags override both. An API listener beyond loopback needs
# api.tokens: give them as files (SHRIKE_API_TOKENS_0_TOKEN_FILE, …).
COPY deploy/docker/shrike.yaml /etc/shrike/shrike.yaml
EXPOSE 8080 9090 8079
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/shrike", "health", "--quiet", "--url", "http://127.0.0.1:8079/healthz", "--url", "http://127.0.0.1:8079/readyz"]
ENTRYPOINT ["/usr/local/bin/shrike"]
CMD ["serve", "--config", "/etc/shrike/shrike.yaml"]
