#!/bin/sh
# Installs armhook from this checkout as a systemd service (an Azure VM, or an image being built).
#
#   sudo systemd/install.sh                    install or upgrade on this machine, then restart it
#   sudo systemd/install.sh --root DIR         install into DIR (image builds, tests); no systemctl
#   sudo systemd/install.sh --uninstall        stop and remove the service and the code; keeps
#                                              /etc/armhook (settings, users, scripts) and
#                                              /var/lib/armhook (jobs, certificates)
#   sudo systemd/install.sh --uninstall --purge   … and removes those too
#
# Re-running is safe: it replaces the code and the unit and keeps settings, users, scripts and jobs.
# The checkout must have run `npm ci` (its node_modules are copied, then pruned of dev tools).
set -eu

root=""
mode=install
purge=no
link=no
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    --uninstall) mode=uninstall; shift ;;
    --purge) purge=yes; shift ;;
    # Hard-link node_modules instead of copying (a throw-away root on the same file system).
    --hardlink-modules) link=yes; shift ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
if [ -n "$root" ]; then
  mkdir -p "$root"
  root=$(cd "$root" && pwd)
  [ "$root" != / ] || root=""
fi
live() { [ -z "$root" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; }

src=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/armhook
etc=/etc/armhook
unit=/etc/systemd/system/armhook.service

if [ "$mode" = uninstall ]; then
  if live; then systemctl disable --now armhook.service 2>/dev/null || true; fi
  rm -rf "$root$prefix" "$root$unit" "$root/usr/local/bin/armhook" "$root/usr/lib/sysusers.d/armhook.conf"
  if [ "$purge" = yes ]; then
    rm -rf "$root$etc" "$root/var/lib/armhook"
    echo "armhook removed, with its settings, scripts, jobs and certificates."
  else
    echo "armhook removed. Kept: $etc (settings, users, scripts) and /var/lib/armhook (jobs, certificates); --purge removes them."
  fi
  if live; then systemctl daemon-reload; fi
  exit 0
fi

[ -d "$src/node_modules/node" ] || { echo "install.sh: run 'npm ci' in $src first (armhook's runtime and libraries come from it)" >&2; exit 1; }
# The compiled bundle starts faster and needs no TypeScript tooling on the VM.
if [ ! -f "$src/dist/.built" ] || [ -n "$(find "$src/server" -newer "$src/dist/.built" -print -quit)" ]; then
  (cd "$src" && npm run build --silent)
fi

# The service user (systemd-sysusers: idempotent, and works on a root being built).
mkdir -p "$root/etc" "$root/usr/lib/sysusers.d"
install -m 0644 "$src/systemd/armhook.sysusers.conf" "$root/usr/lib/sysusers.d/armhook.conf"
if [ -n "$root" ]; then systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/armhook.conf" >/dev/null
else systemd-sysusers /usr/lib/sysusers.d/armhook.conf >/dev/null; fi
gid=$(awk -F: '$1 == "armhook" { print $3 }' "$root/etc/group")

# Code: replaced as a whole, so files removed upstream don't linger.
staging="$root$prefix.new"
rm -rf "$staging"
mkdir -p "$staging"
for part in bin dist server systemd README.md package.json package-lock.json; do
  cp -a "$src/$part" "$staging/"
done
cp -a "$src/scripts" "$staging/examples"
if [ "$link" = yes ]; then cp -al "$src/node_modules" "$staging/"; else cp -a "$src/node_modules" "$staging/"; fi
# npm rewrites this file in place: never a link into the checkout.
rm -f "$staging/node_modules/.package-lock.json"
cp "$src/node_modules/.package-lock.json" "$staging/node_modules/"
(cd "$staging" && npm prune --omit=dev --offline --no-audit --no-fund --loglevel=error >/dev/null)
rm -rf "$root$prefix.old"
[ ! -d "$root$prefix" ] || mv "$root$prefix" "$root$prefix.old"
mv "$staging" "$root$prefix"
rm -rf "$root$prefix.old"

# Settings, users and scripts: created once, never overwritten.
mkdir -p "$root$etc"
chmod 0750 "$root$etc"
chgrp "$gid" "$root$etc"
[ -f "$root$etc/armhook.env" ] || install -m 0640 -g "$gid" "$src/systemd/armhook.env" "$root$etc/armhook.env"
[ -f "$root$etc/htpasswd" ] || install -m 0640 -g "$gid" /dev/null "$root$etc/htpasswd"
# Readable by the service user (armhook check runs as it), whoever wrote them first (cloud-init).
chgrp "$gid" "$root$etc/armhook.env" "$root$etc/htpasswd"
if [ ! -d "$root$etc/scripts" ]; then
  cp -a "$src/scripts" "$root$etc/scripts"
  chown -R "0:$gid" "$root$etc/scripts"
  chmod -R g+rX,o-rwx "$root$etc/scripts"
fi

mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system"
ln -sfn "$prefix/bin/armhook" "$root/usr/local/bin/armhook"
install -m 0644 "$src/systemd/armhook.service" "$root$unit"

if ! live; then
  echo "armhook installed into ${root:-/} (no service manager touched)."
  exit 0
fi
systemctl daemon-reload
systemctl try-restart armhook.service
echo "armhook installed (upgrades restart a running service; running jobs drain first)."
echo "Next:"
echo "  sudo armhook passwd $etc/htpasswd <user>            # add a user"
echo "  sudoedit $etc/armhook.env                           # e.g. ARMHOOK_ACME_DOMAINS=<this VM's DNS name>"
echo "  sudo systemctl enable --now armhook                 # start"
echo "  journalctl -u armhook -f                            # logs"
# The role assignment the identity needs, with this VM's values when IMDS answers.
meta() { curl -fsS --max-time 2 -H Metadata:true "http://169.254.169.254/metadata/instance/compute/$1?api-version=2021-02-01&format=text" 2>/dev/null || true; }
sub=$(meta subscriptionId)
rg=$(meta resourceGroupName)
principal=$( (set -a; . "$etc/armhook.env"; timeout 10 "$prefix/bin/armhook" token --json) 2>/dev/null |
  sed -n 's/.*"principalId":"\([^"]*\)".*/\1/p' || true)
echo "The managed identity needs a role where scripts deploy, e.g. (from a machine signed in to Azure):"
echo "  az role assignment create --assignee-object-id ${principal:-<principal id>} --assignee-principal-type ServicePrincipal \\"
echo "    --role Contributor --scope /subscriptions/${sub:-<subscription id>}/resourceGroups/${rg:-<resource group>}"
