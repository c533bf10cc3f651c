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
touch /etc/ssh/revoked_keys.krl  # RevokedKeys must exist or sshd refuses every key

rsyslogd
/usr/sbin/sshd -t
/usr/sbin/sshd
exec bastiond
