#!/bin/sh
# capstan-agent pre-remove (deb prerm / rpm %preun).
#   deb: prerm remove | upgrade new-version | deconfigure … | failed-upgrade old-version
#   rpm: %preun $1 = 0 (erase) | >= 1 (upgrade: the new version's %post restarts the agent)
# On upgrade nothing stops: the unit uses KillMode=process, so the NGINX the agent runs
# keeps serving and the new agent adopts it. When the package goes away, the agent stops
# and so does its NGINX (nobody would manage it any more). deb keeps the unit's
# enablement across remove and reinstall and drops it on purge; rpm erase disables it.
# Containers are left running.
set -e

unit=capstan-agent.service

case "$1" in
    remove|0) ;;
    *) exit 0 ;;
esac

if command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl stop "$unit" || true
    fi
    if [ "$1" = 0 ]; then
        systemctl disable "$unit" >/dev/null 2>&1 || true
    fi
fi

# The agent's NGINX master: <nginx_dir>/run/nginx.pid, nginx_dir from agent.toml when set
# there, else the default. Graceful stop (QUIT lets workers finish their requests).
nginx_dir=/var/lib/capstan-agent/nginx
if [ -r /etc/capstan/agent.toml ]; then
    configured=$(sed -n 's/^[[:space:]]*nginx_dir[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' /etc/capstan/agent.toml | tail -n 1)
    if [ -n "$configured" ]; then nginx_dir=$configured; fi
fi
pid=$(cat "$nginx_dir/run/nginx.pid" 2>/dev/null || true)
case "$pid" in
    ''|*[!0-9]*) ;;
    *)
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q nginx; then
            kill -QUIT "$pid" 2>/dev/null || true
        fi ;;
esac
exit 0
