#!/bin/sh
# The test suite drives real tools: curl (clients), htpasswd (apache2-utils, to prove armhook
# reads the files it writes), and the operations tools below. Install them when missing and we
# may (root with apt-get); otherwise say exactly what to install. Nothing is downloaded from anywhere but the Debian archive.
set -e
missing=""
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v htpasswd >/dev/null 2>&1 || missing="$missing apache2-utils"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
# The sample GitHub and Event Grid receivers (scripts/ci, scripts/events) read their JSON with python3.
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
# Operations: promtool checks /metrics; pebble (with pebble-challtestsrv) is the ACME server;
# systemd-analyze checks the unit, systemd-nspawn boots it; cloud-init validates systemd/cloud-init.yaml.
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v pebble-challtestsrv >/dev/null 2>&1 || missing="$missing pebble"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
command -v systemd-nspawn >/dev/null 2>&1 || missing="$missing systemd-container"
command -v cloud-init >/dev/null 2>&1 || missing="$missing cloud-init"
# The web console's tests drive Debian's chromium through playwright-core (no browser download).
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$missing fonts-dejavu-core"
# Scripts that run az (test/az/): Debian's azure-cli, and ip (iproute2) to bring loopback up in the
# network namespace those tests run in. azure-cli is large, so it is installed only when missing,
# and a failure to install it (a release without the package) skips those tests instead of failing.
optional=""
command -v az >/dev/null 2>&1 || optional="$optional azure-cli"
command -v ip >/dev/null 2>&1 || optional="$optional iproute2"
if [ -n "$optional" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test/ensure-tools.sh: installing$optional (Debian packages, for test/az/)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $optional >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $optional >/dev/null 2>&1; } ||
    echo "test/ensure-tools.sh: could not install$optional; the tests in test/az/ say what they skip" >&2
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test/ensure-tools.sh: installing$missing (Debian packages)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >/dev/null; }
  exit 0
fi
echo "test/ensure-tools.sh: the tests need:$missing — install with: sudo apt-get install$missing" >&2
exit 1
