#!/bin/sh
# capstan-core pre-remove (deb prerm / rpm %preun).
#   deb: prerm remove | upgrade new-version | deconfigure … | failed-upgrade old-version
#   rpm: %preun $1 = 0 (erase) | >= 1 (upgrade: the new version's %post restarts the core)
# Stops the core only when the package goes away, never on upgrade. deb keeps the unit's
# enablement across remove and reinstall (like dh_installsystemd) and drops it on purge;
# rpm has no purge, so an erase disables the unit.
set -e

unit=capstan-core.service

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
exit 0
