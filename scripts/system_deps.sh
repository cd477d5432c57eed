#!/usr/bin/env bash
# System packages the flow tests need, installed with apt-get only when missing:
#   chromium (+ fonts-liberation for legible text)  the dashboard's browser test
#   postgresql                                      the store tests' throwaway cluster
#
# Without them those tests skip and say why. Where installing is impossible (no apt-get, not
# root and no password-less sudo) this warns and exits 0, unless FIELDVISION_REQUIRE_SYSTEM_DEPS
# is 1 (CI sets it: there a skipped browser or PostgreSQL test would hide a regression).
set -euo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
pkgs=()
[[ -x $CHROMIUM ]] || pkgs+=(chromium fonts-liberation)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || pkgs+=(postgresql)
[[ ${#pkgs[@]} -eq 0 ]] && exit 0

cannot() {
    echo "system_deps: $1; install ${pkgs[*]} yourself (their tests skip without them)" >&2
    [[ ${FIELDVISION_REQUIRE_SYSTEM_DEPS:-0} == 1 ]] && exit 1
    exit 0
}

command -v apt-get >/dev/null || cannot "no apt-get here"
if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    cannot "installing needs root"
fi
apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Use-Pty=0)

started=$SECONDS
echo "system_deps: apt-get install ${pkgs[*]}"
"${apt[@]}" update >/dev/null
if [[ " ${pkgs[*]} " == *" postgresql "* ]]; then
    # The tests start their own throwaway clusters: stop Debian from creating (and starting)
    # a default cluster on port 5432 as the package installs.
    "${apt[@]}" install --no-install-recommends postgresql-common >/dev/null
    "${as_root[@]}" sed -i 's/^#* *create_main_cluster *=.*/create_main_cluster = false/' \
        /etc/postgresql-common/createcluster.conf
fi
"${apt[@]}" install --no-install-recommends "${pkgs[@]}" >/dev/null
echo "system_deps: done in $((SECONDS - started)) s"
