#!/bin/sh
# Before removing the package (not on an upgrade): stop and disable the
# service. The spool in /var/lib/p1logger and /etc/p1logger stay.
set -e
case "${1:-}" in
upgrade | 1) exit 0 ;; # deb: "upgrade"; rpm: 1 package left after the upgrade
esac
if [ -d /run/systemd/system ]; then
	systemctl disable --now p1logger.service >/dev/null 2>&1 || true
fi
