#!/usr/bin/env bash
# System packages the tests and the demo need, installed only when missing (Debian; run as root).
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
command -v mysql >/dev/null 2>&1 || need+=(mariadb-client)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
# container jobs: podman with the runc runtime (crun fails on hybrid cgroup layouts), buildah for
# image builds, Debian's distribution registry, and busybox-static to build test images from scratch
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)  # static: copied into FROM scratch images
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
