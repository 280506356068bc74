#!/bin/sh
# capstan-agent post-install (deb postinst / rpm %post).
#   deb: postinst configure [last-configured-version] | abort-upgrade | abort-remove | abort-deconfigure
#   rpm: %post $1 = 1 (install) | >= 2 (upgrade)
# A fresh install enables the unit; it is started only once the agent is configured
# (core_url set), since it cannot do anything before. An upgrade keeps the config and the
# saved credentials and restarts the agent if its unit is enabled and configured.
set -e

state_dir=/var/lib/capstan-agent
unit=capstan-agent.service

case "$1" in
    configure)
        if [ -n "$2" ]; then upgrade=1; else upgrade=0; fi ;;
    abort-upgrade|abort-remove|abort-deconfigure)
        exit 0 ;;
    [0-9]*)
        if [ "$1" -ge 2 ]; then upgrade=1; else upgrade=0; fi ;;
    *)
        echo "capstan-agent postinstall: unknown argument '$1'" >&2
        exit 0 ;;
esac

# Credentials saved after registering with a join token, and the agent's NGINX
# directory (configs, pid, logs) live here: root only.
mkdir -p "$state_dir"
chmod 0700 "$state_dir"
mkdir -p /etc/capstan
chmod 0755 /etc/capstan
# agent.toml and agent.env may hold the node's key (an agent.env created by hand
# before this package shipped one may have any mode).
for f in /etc/capstan/agent.toml /etc/capstan/agent.env; do
    if [ -f "$f" ]; then
        chmod go-rwx "$f"
    fi
done

# True when the config (TOML file plus the optional agent.env the unit loads) is valid,
# i.e. at least core_url is set.
configured() {
    (
        if [ -r /etc/capstan/agent.env ]; then
            set -a
            # shellcheck disable=SC1091
            . /etc/capstan/agent.env
            set +a
        fi
        cd /
        /usr/bin/capstan-agent check-config >/dev/null 2>&1
    )
}

systemd_running=0
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemd_running=1
    systemctl daemon-reload || true
fi
started=0
if command -v systemctl >/dev/null 2>&1; then
    if [ "$upgrade" = 0 ]; then
        # Works without a running systemd too: it only creates the wants/ symlink.
        systemctl enable "$unit" >/dev/null 2>&1 || echo "capstan-agent: could not enable $unit" >&2
    fi
    if [ "$systemd_running" = 1 ] && configured && systemctl --quiet is-enabled "$unit" 2>/dev/null; then
        if [ "$upgrade" = 0 ]; then verb=start; else verb=restart; fi
        if systemctl "$verb" "$unit"; then
            started=1
        fi
        if [ "$started" = 0 ]; then
            echo "capstan-agent: $unit did not start; see: journalctl -u capstan-agent" >&2
        fi
    fi
fi

# The agent runs its own NGINX on ports 80/443; a distribution nginx.service (which the
# nginx package starts with its default site) would hold them.
if [ "$systemd_running" = 1 ] && systemctl --quiet is-active nginx.service 2>/dev/null; then
    cat <<'MSG'

Note: nginx.service is running. capstan-agent starts its own NGINX (configs in
/var/lib/capstan-agent/nginx) on ports 80 and 443; if the distribution's NGINX is not
used for anything else, free the ports with: systemctl disable --now nginx
MSG
fi

if [ "$upgrade" = 0 ] && [ "$started" = 0 ]; then
    cat <<'MSG'

Capstan agent is installed. To connect this host to the core:
  1. In the Capstan web UI: Nodes -> Add node. Copy the lines it shows
     (CORE_URL=..., AGENT_ID=..., AGENT_KEY=...) into /etc/capstan/agent.env
     (mode 0600), or set core_url, agent_id and agent_key in /etc/capstan/agent.toml.
  2. Check:  capstan-agent check-config
  3. Start:  systemctl restart capstan-agent
     and follow it with: journalctl -u capstan-agent -f

MSG
fi
exit 0
