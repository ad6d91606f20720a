#!/usr/bin/env bash
# Starts (or stops) the stand-ins for the example lab's NAS and offsite bucket
# on 127.0.0.1, so that its backup policies and drills run on one machine:
#   nas      an OpenSSH sshd on 127.0.0.1:2222 that only speaks SFTP, for root
#            with a key made here; files under <state>/demo-peers/nas
#   offsite  s3rver (scripts/npm-tools.sh installs it) on https://127.0.0.1:4568
#            with a certificate from a CA made here; files under
#            <state>/demo-peers/offsite
# Keys, certificates, logs and pid files live in <state>/demo-peers, where the
# example's backups.yaml expects them (<state> = LAB/.hearth).
#
# Usage: scripts/demo-peers.sh start|stop|status [LAB_DIR]   (default examples/home)
# Run it as root (sshd lets root in with the key made here, over SFTP only).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
lab=$(cd "${2:-$here/examples/home}" && pwd)
dir=$lab/.hearth/demo-peers
sftp_port=${HEARTH_DEMO_SFTP_PORT:-2222}
s3_port=${HEARTH_DEMO_S3_PORT:-4568}
s3rver=${HEARTH_S3RVER:-/opt/hearth-npm/node_modules/.bin/s3rver}

listening() {  # PORT: true when something accepts on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() {  # PORT NAME LOG
  for _ in $(seq 1 100); do
    if listening "$1"; then return 0; fi
    sleep 0.1
  done
  echo "error: $2 did not start on 127.0.0.1:$1; its log ($3) ends:" >&2
  tail -n 20 "$3" >&2 || true
  return 1
}

alive() {  # PIDFILE
  [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

make_keys() {
  mkdir -p "$dir/nas" "$dir/offsite"
  chmod 0700 "$dir"
  if [[ ! -s $dir/host_key ]]; then
    ssh-keygen -q -t ed25519 -N '' -C hearth-demo-nas -f "$dir/host_key"
  fi
  if [[ ! -s $dir/client_key ]]; then
    ssh-keygen -q -t ed25519 -N '' -C hearth-demo-client -f "$dir/client_key"
  fi
  cp "$dir/client_key.pub" "$dir/authorized_keys"
  echo "[127.0.0.1]:$sftp_port $(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
  if [[ ! -s $dir/offsite-ca.pem ]]; then
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout "$dir/offsite-ca.key" -out "$dir/offsite-ca.pem" \
      -days 3650 -subj /CN=hearth-demo-ca -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req "${ec[@]}" -keyout "$dir/offsite.key" -out "$dir/offsite.csr" \
      -subj /CN=localhost 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
      >"$dir/offsite.ext"
    openssl x509 -req -in "$dir/offsite.csr" -CA "$dir/offsite-ca.pem" -CAkey "$dir/offsite-ca.key" \
      -CAcreateserial -out "$dir/offsite.pem" -days 3650 -extfile "$dir/offsite.ext" 2>/dev/null
  fi
}

start() {
  for tool in /usr/sbin/sshd ssh-keygen openssl "$s3rver"; do
    if ! command -v "$tool" >/dev/null; then
      echo "error: $tool is missing; run scripts/setup.sh and scripts/npm-tools.sh" >&2
      exit 1
    fi
  done
  make_keys
  if alive "$dir/sshd.pid"; then
    echo "nas: already running (sshd pid $(cat "$dir/sshd.pid"))"
  else
    cat >"$dir/sshd_config" <<EOF
Port $sftp_port
ListenAddress 127.0.0.1
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
AllowUsers root
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $dir/sshd.pid
Subsystem sftp internal-sftp
ForceCommand internal-sftp -d $dir/nas
AllowTcpForwarding no
X11Forwarding no
EOF
    mkdir -p /run/sshd
    /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
    wait_port "$sftp_port" "the demo NAS (sshd)" "$dir/sshd.log"
    echo "nas: sftp://root@127.0.0.1:$sftp_port (files in $dir/nas)"
  fi
  if alive "$dir/s3rver.pid"; then
    echo "offsite: already running (s3rver pid $(cat "$dir/s3rver.pid"))"
  else
    # s3rver 3.7.1 makes list continuation tokens with DES, which Node 17+
    # keeps in OpenSSL's legacy provider.
    NODE_OPTIONS=--openssl-legacy-provider setsid "$s3rver" -d "$dir/offsite" -a 127.0.0.1 \
      -p "$s3_port" --key "$dir/offsite.key" --cert "$dir/offsite.pem" \
      --service-endpoint localhost >"$dir/s3rver.log" 2>&1 </dev/null &
    echo $! >"$dir/s3rver.pid"
    wait_port "$s3_port" "the demo offsite bucket (s3rver)" "$dir/s3rver.log"
    echo "offsite: https://127.0.0.1:$s3_port (files in $dir/offsite, CA $dir/offsite-ca.pem)"
  fi
}

stop() {
  for name in sshd s3rver; do
    if alive "$dir/$name.pid"; then
      kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
      echo "stopped $name"
    fi
    rm -f "$dir/$name.pid"
  done
}

status() {
  local rc=0
  for name in sshd s3rver; do
    if alive "$dir/$name.pid"; then
      echo "$name: running (pid $(cat "$dir/$name.pid"))"
    else
      echo "$name: stopped"
      rc=3
    fi
  done
  return $rc
}

case $cmd in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status [LAB_DIR]" >&2
    exit 64
    ;;
esac
