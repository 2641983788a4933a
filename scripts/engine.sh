#!/usr/bin/env bash
# Ensure a working Docker engine (and mmdebstrap, for the offline image build).
#
# Idempotent and fast when the daemon already answers. Machines of this kind ship only the
# docker client and have no systemd, so the engine comes from Debian's docker.io package and
# dockerd is started by hand in the background. Exit 0 only when `docker info` answers.
set -euo pipefail

LOG="${AEM_DOCKERD_LOG:-/tmp/aem-dockerd.log}"
WAIT_S="${AEM_DOCKERD_WAIT_S:-60}"

die() { echo "engine.sh: error: $*" >&2; exit 1; }

docker_up() { command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; }

apt_install() {
    # apt needs root; as another user say what to run instead of failing obscurely.
    if [ "$(id -u)" -ne 0 ]; then
        die "missing $*; install as root: apt-get install -y $*"
    fi
    if [ -z "${_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
        _APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        || die "apt-get install $* failed"
}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "engine.sh: installing ${missing[*]}"
    # docker.io brings containerd, runc and iptables; mmdebstrap needs nothing beyond apt.
    apt_install "${missing[@]}"
fi
# docker.io includes its own client; a client-less machine gets one too.
command -v docker >/dev/null 2>&1 || die "docker client not found after installing docker.io"

if docker_up; then
    exit 0
fi

if pgrep -x dockerd >/dev/null 2>&1; then
    echo "engine.sh: dockerd is running but does not answer yet; waiting"
else
    [ "$(id -u)" -eq 0 ] || die "dockerd is not running and starting it needs root"
    echo "engine.sh: starting dockerd (log: $LOG)"
    # setsid: the daemon must outlive this script and the shell/CI step that ran it.
    setsid dockerd >"$LOG" 2>&1 < /dev/null &
    started_pid=$!
fi

# Alive: the process we started (which may still be exec'ing into dockerd) or any dockerd.
alive() { { [ -n "${started_pid:-}" ] && kill -0 "$started_pid" 2>/dev/null; } || pgrep -x dockerd >/dev/null 2>&1; }

deadline=$((SECONDS + WAIT_S))
while [ "$SECONDS" -lt "$deadline" ]; do
    if docker_up; then
        echo "engine.sh: docker engine ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
        exit 0
    fi
    if ! alive; then
        tail -n 20 "$LOG" >&2 2>/dev/null || true
        die "dockerd exited during start-up; see $LOG"
    fi
    sleep 1
done
tail -n 20 "$LOG" >&2 2>/dev/null || true
die "docker engine did not answer within ${WAIT_S}s; see $LOG"
