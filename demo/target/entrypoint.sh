#!/bin/sh
# Demo target: the same demo key as the bastion (ProxyJump authenticates end to end to each hop).
set -eu
if [ -f /keys/id_demo.pub ]; then
  install -d -m 0700 -o demo -g demo /home/demo/.ssh
  install -m 0600 -o demo -g demo /keys/id_demo.pub /home/demo/.ssh/authorized_keys
fi
ssh-keygen -A
/usr/sbin/sshd -t
exec /usr/sbin/sshd -D -e
