// Package deploy checks the container and compose kit that the engine's own
// module can check without Docker: the static binary the Dockerfile builds
// runs alone in an empty root (chroot), answering --version and probing
// with `shrike health`; the Dockerfile is pinned to go.mod's toolchain and
// runs as a numeric non-root user; docker-compose.yml names only files that
// exist, pinned images, real SHRIKE_* configuration variables, distinct
// host ports and existing services. The Helm chart's tests are a module of
// their own (deploy/chartcheck).
package deploy
