#!/bin/sh
# Installs armhook from this checkout as a systemd service on an Azure VM:
#   sudo systemd/install.sh            (then: sudo armhook passwd /etc/armhook/htpasswd <user>)
# Idempotent: re-running updates the code and the unit, and keeps settings, users and jobs.
set -eu
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
src=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/armhook

id armhook >/dev/null 2>&1 || useradd --system --home-dir /var/lib/armhook --shell /usr/sbin/nologin armhook
mkdir -p "$prefix" /etc/armhook
# Code, sample scripts and the unit; never keys, data or node_modules from the source tree.
tar -C "$src" --exclude=./node_modules --exclude=./data --exclude='./tls/*.pem' --exclude=./.git -cf - . | tar -C "$prefix" -xf -
# Full install (its prepare step bundles dist/ with esbuild), then drop the dev tools.
(cd "$prefix" && npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund)
mkdir -p "$prefix/tls" && chown armhook:armhook "$prefix/tls"
[ -f /etc/armhook/armhook.env ] || install -m 0640 -g armhook "$src/systemd/armhook.env" /etc/armhook/armhook.env
[ -f /etc/armhook/htpasswd ] || install -m 0640 -g armhook /dev/null /etc/armhook/htpasswd
ln -sf "$prefix/bin/armhook" /usr/local/bin/armhook
install -m 0644 "$src/systemd/armhook.service" /etc/systemd/system/armhook.service
systemctl daemon-reload
echo "installed. Next:"
echo "  sudo armhook passwd /etc/armhook/htpasswd <user>     # add a user"
echo "  sudo systemctl enable --now armhook                   # start"
echo "  journalctl -u armhook -f                              # logs"
