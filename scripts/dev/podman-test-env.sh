#!/bin/bash
# Creates the same private podman environment the podman driver tests use
# (tests/runtime/podman_env.h), for poking at podman by hand on these hosts:
# runc, cgroupfs, file events, ulimits within the hard limits (no
# CAP_SYS_RESOURCE here), own storage, and the image
# localhost/hearth-test-busybox:latest imported from busybox-static (no
# registry is reachable).
#
# Usage: env_lines=$(scripts/dev/podman-test-env.sh) && eval "$env_lines"
#        podman run --rm localhost/hearth-test-busybox:latest echo hi
#        # when done (only with CONTAINERS_STORAGE_CONF set, or this wipes
#        # the host's default storage):
#        podman rm -a -f -t 0; podman system reset -f; rm -rf "$HEARTH_PODMAN_DIR"
#
# Needs the Debian packages podman runc busybox-static catatonit.
set -euo pipefail

command -v podman >/dev/null || { echo "podman not installed (apt-get install podman runc busybox-static catatonit)" >&2; exit 1; }
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "busybox not installed (apt-get install busybox-static)" >&2; exit 1; }

dir=$(mktemp -d /tmp/hearth-podman-XXXXXX)
trap 'rm -rf "$dir"' ERR
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] || [ "$nofile" -gt 20000 ] && nofile=20000
nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768

mkdir -p "$dir/tmp" "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/tmp"
cat >"$dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$dir/tmp"
volume_path = "$dir/volumes"
[network]
network_backend = "netavark"
network_config_dir = "$dir/networks"
EOF
cat >"$dir/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$dir/root"
runroot = "$dir/run"
EOF
export CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_STORAGE_CONF="$dir/storage.conf"

cp "$busybox" "$dir/rootfs/bin/busybox"
for a in sh httpd nc sleep echo cat ls env true false wget printenv kill ps; do
  ln -s busybox "$dir/rootfs/bin/$a"
done
chmod 1777 "$dir/rootfs/tmp"
echo 'root:x:0:0:root:/:/bin/sh' >"$dir/rootfs/etc/passwd"
tar -C "$dir/rootfs" -cf "$dir/rootfs.tar" .
podman import -q "$dir/rootfs.tar" localhost/hearth-test-busybox:latest >/dev/null

echo "export CONTAINERS_CONF='$dir/containers.conf'"
echo "export CONTAINERS_STORAGE_CONF='$dir/storage.conf'"
echo "export HEARTH_PODMAN_DIR='$dir'"
