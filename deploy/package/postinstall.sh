#!/bin/sh
# After installing or upgrading the .deb/.rpm: make systemd see the unit. The
# service is not enabled here: it needs P1_GATEWAYS and InfluxDB first.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# An upgrade restarts a running daemon on the new binary (it drains to
	# InfluxDB or its spool on the way down).
	if systemctl is-active --quiet p1logger.service; then
		systemctl restart p1logger.service || true
	else
		echo "p1logger: set P1_GATEWAYS and P1_INFLUX_* in /etc/p1logger/p1logger.env, then: systemctl enable --now p1logger"
	fi
fi
