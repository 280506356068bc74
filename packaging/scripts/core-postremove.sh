#!/bin/sh
# capstan-core post-remove (deb postrm / rpm %postun).
#   deb: postrm remove | purge | upgrade new-version | failed-upgrade | abort-install | abort-upgrade | disappear
#   rpm: %postun $1 = 0 (erase) | >= 1 (upgrade)
# remove keeps the data (/var/lib/capstan) and the user; purge (deb only) deletes both.
# rpm has no purge: after `rpm -e`, delete /var/lib/capstan and the user by hand if wanted.
set -e

unit=capstan-core.service

case "$1" in
    remove|purge|0)
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            systemctl daemon-reload || true
        fi ;;
esac

if [ "$1" = purge ]; then
    rm -f "/etc/systemd/system/multi-user.target.wants/$unit"
    rm -rf /var/lib/capstan
    # dpkg deletes the conffile itself; the directory may still hold the agent's files.
    rm -f /etc/capstan/core.toml.dpkg-old /etc/capstan/core.toml.dpkg-dist /etc/capstan/core.toml.dpkg-new
    rmdir /etc/capstan 2>/dev/null || true
    if getent passwd capstan >/dev/null 2>&1; then
        userdel capstan >/dev/null 2>&1 || deluser --system capstan >/dev/null 2>&1 || true
    fi
    if getent group capstan >/dev/null 2>&1; then
        groupdel capstan >/dev/null 2>&1 || delgroup --system capstan >/dev/null 2>&1 || true
    fi
fi
exit 0
