#!/bin/sh
# Adds a client (tenant), run as root: a chrooted SFTP-only system user with its own group, its
# drop folder, its SSH public key and its API token; prints the [[tenant]] block to append to the
# configuration. The API token is read from standard input (never from the command line).
#
#   deploy/add-tenant.sh acme acme.pub parking@acme.edu it@acme.edu <acme.token \
#       >>/etc/opscom-import/config.toml
#
# Then restart the service: it learns its new group membership only when it starts.
# Paths and names can be overridden through the environment, as for install.sh.
set -eu

: "${SERVICE_USER:=opscom-import}"
: "${SFTP_GROUP:=opscom-sftp}"
: "${SFTP_ROOT:=/srv/sftp}"
: "${CONFIG_DIR:=/etc/opscom-import}"
: "${KEYS_DIR:=/etc/ssh/authorized_keys}"
: "${API_URL:=https://controller.operationscommander.io}"

usage="usage: add-tenant.sh NAME PUBLIC_KEY_FILE REPLY_TO_ADMIN_EMAIL FAILED_IMPORT_EMAIL <TOKEN"
name=${1:?$usage}
key=${2:?$usage}
reply_to=${3:?$usage}
failed_to=${4:?$usage}

case "$name" in
    "" | -* | *[!a-z0-9_-]*)
        echo "add-tenant.sh: $name: use a-z, 0-9, - and _ (it names a user and folders)" >&2
        exit 2
        ;;
esac
if [ "${#name}" -gt 32 ]; then
    echo "add-tenant.sh: $name: at most 32 characters (a user name)" >&2
    exit 2
fi
if getent passwd "$name" >/dev/null; then
    echo "add-tenant.sh: user $name exists already" >&2
    exit 1
fi
IFS= read -r token || true
if [ -z "$token" ]; then
    echo "add-tenant.sh: give the tenant's API token on standard input" >&2
    exit 2
fi

# The client: SFTP only (sshd's Match Group), no password ('*': key only; a locked '!' account
# is refused by sshd when it runs without PAM), its own group for its drop folder.
useradd --system --user-group --groups "$SFTP_GROUP" --no-create-home --home-dir /upload \
    --shell /usr/sbin/nologin "$name"
usermod --password '*' "$name"

# The chroot (root-owned, as sshd demands) and the drop folder: the client's, shared with the
# importer through the client's group (setgid, so every upload gets that group).
install -d -o root -g root -m 0755 "$SFTP_ROOT/$name"
install -d -o "$name" -g "$name" -m 2770 "$SFTP_ROOT/$name/upload"
usermod --append --groups "$name" "$SERVICE_USER"

install -o root -g root -m 0644 "$key" "$KEYS_DIR/$name"

umask 0027
printf '%s\n' "$token" >"$CONFIG_DIR/tokens/$name"
chown root:"$SERVICE_USER" "$CONFIG_DIR/tokens/$name"

cat <<BLOCK

[[tenant]]
name = "$name"
drop_dir = "$SFTP_ROOT/$name/upload"
work_dir = "$SFTP_ROOT/.opscom-import/$name"
api_url = "$API_URL"
api_token_file = "$CONFIG_DIR/tokens/$name"
reply_to_admin_email = "$reply_to"
failed_import_email = "$failed_to"
BLOCK
