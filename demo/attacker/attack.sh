#!/bin/sh
# Logins as common names, one connection every few seconds, forever. The bastion takes keys only and
# allows only "demo", so each is refused and logged ("Invalid user admin from ...", "User root from ...
# not allowed"). Within a minute bastiond bans this container's address (sshd-user-enumeration,
# sshd-bruteforce) and the attempts time out instead: watch "Active bans" and "Decisions" in Grafana,
# and `docker compose exec bastion bastionctl bans`.
set -u
target=${ATTACK_TARGET:-bastion}
while :; do
  for user in root admin ubuntu oracle test; do
    ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
      -o PubkeyAuthentication=no -o ConnectTimeout=5 "$user@$target" true 2>/dev/null
    echo "attempt as $user: exit $?"
    sleep "${ATTACK_INTERVAL:-3}"
  done
done
