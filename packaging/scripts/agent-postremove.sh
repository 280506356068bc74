#!/bin/sh
# capstan-agent post-remove (deb postrm / rpm %postun).
#   deb: postrm remove | purge | upgrade new-version | failed-upgrade | abort-install | abort-upgrade | disappear
#   rpm: %postun $1 = 0 (erase) | >= 1 (upgrade)
# remove keeps /var/lib/capstan-agent (saved credentials, the NGINX configs last applied);
# purge (deb only) deletes it and /etc/capstan/agent.env.
set -e

unit=capstan-agent.service

case "$1" in
    remove|purge|0)
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            systemctl daemon-reload || true
        fi ;;
esac

if [ "$1" = purge ]; then
    rm -f "/etc/systemd/system/multi-user.target.wants/$unit"
    rm -rf /var/lib/capstan-agent
    rm -f /etc/capstan/agent.env
    rm -f /etc/capstan/agent.toml.dpkg-old /etc/capstan/agent.toml.dpkg-dist /etc/capstan/agent.toml.dpkg-new
    # Shared with capstan-core when both are installed.
    rmdir /etc/capstan 2>/dev/null || true
fi
exit 0
