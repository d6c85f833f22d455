# syntax=docker/dockerfile:1
# One recipe for the image of every Lethe service. Build from the repository
# root (each module replaces ../../pkg, so the Go workspace is the context):
#
#   docker build --build-arg SERVICE=orchestrator -t lethe/orchestrator .
#   docker build --build-arg SERVICE=billing -t lethe/billing .
#
# SERVICE is a folder of services/: the image holds every command under it
# (subprocessors' also holds vendor-standin) and runs the one named after it.
# Give the service its flags as the container's command (compose `command`,
# Kubernetes `args`): the binaries' defaults listen on loopback only.
ARG GO_VERSION=1.26
ARG ALPINE_VERSION=3.22

FROM golang:${GO_VERSION} AS build
ARG SERVICE
WORKDIR /src
# Pure Go (modernc SQLite): static binaries that run on any base image.
ENV CGO_ENABLED=0
# go.work names every module, so every module's folder must be present.
COPY go.work go.work.sum ./
COPY pkg/ pkg/
COPY services/ services/
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    test -n "$SERVICE" || { echo "--build-arg SERVICE=<folder of services/> is required" >&2; exit 1; }; \
    go build -trimpath -ldflags="-s -w" -o /out/ \
      $(go list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' "./services/${SERVICE}/...")

# Alpine rather than distroless: busybox's wget and sh serve the compose
# healthchecks and the entrypoint (Kubernetes probes need neither).
# /data, the data directory, is the service user's alone (0700): a volume
# mounted there starts with this mode and owner, and the services keep
# their own folders 0700 and files 0600 in it.
FROM alpine:${ALPINE_VERSION}
ARG SERVICE
RUN apk add --no-cache ca-certificates \
 && addgroup -S -g 10001 lethe \
 && adduser -S -D -H -u 10001 -G lethe -h /data lethe \
 && mkdir -p /data && chown lethe:lethe /data && chmod 0700 /data
COPY --from=build /out/ /usr/local/bin/
ENV LETHE_SERVICE=${SERVICE}
USER 10001:10001
WORKDIR /data
# 8080: the orchestrator's API; 8081: the demo accounts app; 8090: the
# vendor stand-in; 9090: a connector's /metrics and /healthz.
EXPOSE 8080 8081 8090 9090
ENTRYPOINT ["/bin/sh", "-c", "exec \"/usr/local/bin/$LETHE_SERVICE\" \"$@\"", "--"]
