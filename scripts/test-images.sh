#!/usr/bin/env bash
# Builds the local images the DOCKER executor tests use, without any registry: a busybox root
# file system (from Debian's busybox-static) imported with `docker import`.
#   formicary-test/busybox:latest   sh, echo, sleep, cat, ls, dd, head, ... (busybox applets)
# Idempotent: an existing tag is kept unless FORCE=1. Needs DOCKER_HOST (or the default socket).
set -euo pipefail
TAG=${1:-formicary-test/busybox:latest}
if [ "${FORCE:-0}" != 1 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  exit 0
fi
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || { echo "busybox not found (apt-get install busybox-static)" >&2; exit 1; }
ROOT=$(mktemp -d /tmp/formicary-rootfs.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,tmp,etc,root,proc,sys,dev,work}
chmod 1777 "$ROOT/tmp"
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -sf /bin/busybox "$ROOT/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$ROOT/etc/passwd"
echo 'root:x:0:' >"$ROOT/etc/group"
tar -C "$ROOT" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/sh"]' - "$TAG" >/dev/null
echo "built $TAG"
