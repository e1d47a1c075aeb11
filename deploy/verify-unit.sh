#!/bin/sh
# Checks deploy/opscom-import.service with `systemd-analyze verify` (no running systemd needed):
# the unit and the binary are placed in a scratch root, as they are installed on a host.
#
#   deploy/verify-unit.sh target/debug/opscom-import
#
# Any complaint (an unknown key, a value systemd cannot parse, a missing binary) fails.
set -eu

binary=${1:?usage: verify-unit.sh PATH/TO/opscom-import}
here=$(dirname "$0")
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

install -d "$root/usr/local/bin" "$root/bin" "$root/etc/systemd/system"
install -m 0755 "$binary" "$root/usr/local/bin/opscom-import"
# ExecReload= runs /bin/kill (Debian's procps), and verify wants every command in the root: the
# host's own, or a stand-in where this host has none (the unit is checked here, not the host).
if [ -x /bin/kill ]; then
    install -m 0755 /bin/kill "$root/bin/kill"
else
    printf '#!/bin/sh\n' >"$root/bin/kill"
    chmod 0755 "$root/bin/kill"
fi
install -m 0644 "$here/opscom-import.service" "$root/etc/systemd/system/opscom-import.service"

# --recursive-errors=no: the scratch root holds no other units (sysinit.target and friends).
out=$(systemd-analyze verify --root="$root" --recursive-errors=no \
    /etc/systemd/system/opscom-import.service 2>&1) || {
    printf '%s\n' "$out" >&2
    exit 1
}
if [ -n "$out" ]; then
    printf 'systemd-analyze verify complained:\n%s\n' "$out" >&2
    exit 1
fi
echo "opscom-import.service: systemd-analyze verify passed"
