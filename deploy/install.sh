#!/bin/sh
# Installs opscom-import on a Debian host (run as root): the service user, the SFTP group, the
# folders with their owners and modes, the binary, the configuration and the sshd drop-in.
# Idempotent: running it again changes nothing that exists.
#
#   deploy/install.sh target/release/opscom-import
#
# Every path and name can be overridden through the environment (the end-to-end test,
# tests/tests/e2e_sftp.rs, installs into a scratch root this way).
set -eu

: "${SERVICE_USER:=opscom-import}"
: "${SFTP_GROUP:=opscom-sftp}"
: "${SFTP_ROOT:=/srv/sftp}"
: "${STATE_DIR:=/var/lib/opscom-import}"
: "${CONFIG_DIR:=/etc/opscom-import}"
: "${KEYS_DIR:=/etc/ssh/authorized_keys}"
: "${BIN_DIR:=/usr/local/bin}"
: "${SSHD_CONFIG:=/etc/ssh/sshd_config}"
: "${SSHD_DROPIN:=/etc/ssh/sshd_config.d/opscom-sftp.conf}"

binary=${1:?usage: install.sh PATH/TO/opscom-import}
here=$(dirname "$0")

getent group "$SFTP_GROUP" >/dev/null || groupadd --system "$SFTP_GROUP"
getent passwd "$SERVICE_USER" >/dev/null ||
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$SERVICE_USER"

install -d -o root -g root -m 0755 "$BIN_DIR"
install -o root -g root -m 0755 "$binary" "$BIN_DIR/opscom-import"

# Chroots must be root-owned and not group/world-writable all the way up.
install -d -o root -g root -m 0755 "$SFTP_ROOT"
# Work folders (claims, checkpoints, unsent reports) sit on the drop folders' filesystem AND under
# the same ReadWritePaths= entry of the unit: claims are renames, and rename(2) across two mounts
# (systemd bind-mounts each ReadWritePaths= entry) fails with EXDEV.
install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0700 "$SFTP_ROOT/.opscom-import" "$STATE_DIR"

install -d -o root -g "$SERVICE_USER" -m 0750 "$CONFIG_DIR" "$CONFIG_DIR/tokens"
if [ ! -e "$CONFIG_DIR/config.toml" ]; then
    sed "s#/var/lib/opscom-import#$STATE_DIR#" "$here/opscom-import.toml" >"$CONFIG_DIR/config.toml.new"
    chown root:"$SERVICE_USER" "$CONFIG_DIR/config.toml.new"
    chmod 0640 "$CONFIG_DIR/config.toml.new"
    mv "$CONFIG_DIR/config.toml.new" "$CONFIG_DIR/config.toml"
fi

install -d -o root -g root -m 0755 "$KEYS_DIR" "$(dirname "$SSHD_DROPIN")"
sed -e "s#/srv/sftp#$SFTP_ROOT#g" \
    -e "s#/etc/ssh/authorized_keys#$KEYS_DIR#g" \
    -e "s#Match Group opscom-sftp#Match Group $SFTP_GROUP#" \
    "$here/sshd_config.d/opscom-sftp.conf" >"$SSHD_DROPIN"
chmod 0644 "$SSHD_DROPIN"
# sshd refuses to start with a broken configuration: check it before anyone reloads.
mkdir -p /run/sshd
sshd -t -f "$SSHD_CONFIG"
echo "installed; next: deploy/add-tenant.sh for each client, then start the service" >&2
