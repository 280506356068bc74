#!/bin/sh
# capstan-core post-install (deb postinst / rpm %post).
#   deb: postinst configure [last-configured-version] | abort-upgrade | abort-remove | abort-deconfigure
#   rpm: %post $1 = 1 (install) | >= 2 (upgrade)
# A fresh install enables the unit (and starts it when systemd runs). An upgrade keeps
# /etc/capstan and /var/lib/capstan untouched and restarts the core if its unit is enabled.
set -e

data_dir=/var/lib/capstan
unit=capstan-core.service

case "$1" in
    configure)
        if [ -n "$2" ]; then upgrade=1; else upgrade=0; fi ;;
    abort-upgrade|abort-remove|abort-deconfigure)
        exit 0 ;;
    [0-9]*)
        if [ "$1" -ge 2 ]; then upgrade=1; else upgrade=0; fi ;;
    *)
        echo "capstan-core postinstall: unknown argument '$1'" >&2
        exit 0 ;;
esac

# Created by the pre-install script.
if ! getent passwd capstan >/dev/null 2>&1; then
    echo "capstan-core: the 'capstan' user is missing; reinstall the package" >&2
    exit 1
fi

# The data dir holds the store and the first admin password: for the core's user only.
# systemd's StateDirectory= creates it too; this covers running without systemd.
mkdir -p "$data_dir"
chown capstan:capstan "$data_dir"
chmod 0700 "$data_dir"
mkdir -p /etc/capstan
chmod 0755 /etc/capstan
# The daemon reads its config through its group; left alone if an administrator changed
# the owner (package managers that cannot map the group at unpack time leave root:root).
if [ -f /etc/capstan/core.toml ] && [ "$(stat -c %U:%G /etc/capstan/core.toml)" = "root:root" ]; then
    chgrp capstan /etc/capstan/core.toml
    chmod 0640 /etc/capstan/core.toml
fi

# Decided before the core starts and creates its store.
had_store=0
if [ -e "$data_dir/core.redb" ]; then had_store=1; fi

systemd_running=0
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemd_running=1
    systemctl daemon-reload || true
fi
if command -v systemctl >/dev/null 2>&1; then
    if [ "$upgrade" = 0 ]; then
        # Works without a running systemd too: it only creates the wants/ symlink.
        systemctl enable "$unit" >/dev/null 2>&1 || echo "capstan-core: could not enable $unit" >&2
    fi
    if [ "$systemd_running" = 1 ]; then
        if [ "$upgrade" = 0 ]; then
            systemctl start "$unit" || echo "capstan-core: $unit did not start; see: journalctl -u capstan-core" >&2
        elif systemctl --quiet is-enabled "$unit" 2>/dev/null; then
            systemctl restart "$unit" || echo "capstan-core: $unit did not restart; see: journalctl -u capstan-core" >&2
        fi
    fi
fi

if [ "$upgrade" = 0 ]; then
    echo
    echo "Capstan core is installed."
    echo "  Web UI:       http://127.0.0.1:8080"
    echo "                (set listen in /etc/capstan/core.toml, e.g. \"0.0.0.0:8080\", or put a"
    echo "                reverse proxy in front, so that agents on other hosts can reach it)"
    if [ "$had_store" = 1 ]; then
        echo "  Data:         the existing store in $data_dir was kept; log in as before."
    else
        echo "  First login:  user \"admin\"; its password is generated at the first start and kept in"
        echo "                  $data_dir/initial-admin-password   (sudo cat it)"
        echo "                until you change it; it is also logged once: journalctl -u capstan-core"
    fi
    if [ "$systemd_running" = 0 ]; then
        echo "  Start:        systemctl start capstan-core"
        echo "                (without systemd: runuser -u capstan -- capstan-core serve)"
    fi
    echo
fi
exit 0
