#!/bin/sh
# capstan-core pre-install (deb preinst / rpm %pre).
# Creates the `capstan` system user and group before the files are unpacked, so that
# /etc/capstan/core.toml lands owned root:capstan (mode 0640).
#   deb: preinst install [old-version] | upgrade old-version | abort-upgrade new-version
#   rpm: %pre $1 = 1 (install) | >= 2 (upgrade)
set -e

case "$1" in
    abort-upgrade) exit 0 ;;
esac

nologin=/bin/false
for shell in /usr/sbin/nologin /sbin/nologin; do
    if [ -x "$shell" ]; then nologin=$shell; break; fi
done

if ! getent group capstan >/dev/null 2>&1; then
    if command -v groupadd >/dev/null 2>&1; then
        groupadd --system capstan
    else
        addgroup --system capstan
    fi
fi
if ! getent passwd capstan >/dev/null 2>&1; then
    if command -v useradd >/dev/null 2>&1; then
        useradd --system --gid capstan --home-dir /var/lib/capstan --no-create-home \
            --shell "$nologin" --comment "Capstan core" capstan
    else
        adduser --system --ingroup capstan --home /var/lib/capstan --no-create-home \
            --shell "$nologin" --gecos "Capstan core" capstan
    fi
fi
exit 0
