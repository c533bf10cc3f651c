#!/bin/sh
# Demo bastion: rsyslogd writes /var/log/auth.log, sshd logs into it, bastiond follows it and bans in
# this container's own nftables (its network namespace only; the host's firewall is never touched).
set -eu

# Keys: demo/keys/id_demo.pub (made by the README's walk-through) authorises the "demo" user.
if [ -f /keys/id_demo.pub ]; then
  install -d -m 0700 -o demo -g demo /home/demo/.ssh
  install -m 0600 -o demo -g demo /keys/id_demo.pub /home/demo/.ssh/authorized_keys
fi
ssh-keygen -A
# RevokedKeys must exist or sshd refuses every key: an empty KRL (bastion-guard's key rotation fills it)
[ -e /etc/ssh/revoked_keys.krl ] || ssh-keygen -q -k -f /etc/ssh/revoked_keys.krl

# followed from the first line sshd writes (kept across container restarts, like the state)
[ -e /var/log/auth.log ] || install -m 0640 -g adm /dev/null /var/log/auth.log
rsyslogd
/usr/sbin/sshd -t
/usr/sbin/sshd
exec bastiond
