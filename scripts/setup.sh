#!/usr/bin/env bash
# Installs what provisioner needs on a Debian/Ubuntu controller, idempotently: Docker engine (started when
# none answers), debootstrap, ssh, git, a Python >= 3.11 venv in .venv with provisioner.
# With --test (scripts/test.sh) also what only the tests use: vagrant and vagrant-libvirt (the Vagrantfile's
# test), pebble (the HTTPS tests' ACME server), and the test tools (pytest, ruff, mypy, yamllint,
# ansible-lint). The demo installs none of these.
set -euo pipefail
cd "$(dirname "$0")/.."
tests=false
[ "${1:-}" = --test ] && tests=true

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
say() { printf '==> %s\n' "$*" >&2; }

python_ok() { command -v python3 >/dev/null && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v ssh >/dev/null || need+=(openssh-client)
command -v git >/dev/null || need+=(git)
command -v tar >/dev/null || need+=(tar)
command -v curl >/dev/null || need+=(curl)
if $tests; then
  command -v vagrant >/dev/null || need+=(vagrant)   # for the Vagrantfile and its test (docker provider)
  dpkg -s vagrant-libvirt >/dev/null 2>&1 || need+=(vagrant-libvirt)   # to validate the libvirt block
  command -v pebble >/dev/null || need+=(pebble)   # a real ACME server for the HTTPS tests
fi
python_ok || need+=(python3 python3-venv)
if [ "${#need[@]}" -gt 0 ]; then
  say "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python_ok || { echo "error: Python >= 3.11 with venv is needed (Debian 12+ or Ubuntu 24.04+ have it)" >&2; exit 1; }

if ! docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    say "starting docker (systemd)"
    $SUDO systemctl start docker
  else
    say "starting dockerd (no systemd here): log in /var/log/dockerd.log"
    $SUDO sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "error: the Docker engine did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
if $tests; then
  stamp=.venv/.provisioner-installed-test what="provisioner and its test tools" spec='.[test]'
else
  stamp=.venv/.provisioner-installed what="provisioner" spec='.'
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing $what into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e "$spec"
  touch "$stamp"
fi
