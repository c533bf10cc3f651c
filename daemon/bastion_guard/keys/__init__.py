"""Key lifecycle: offboarding departed people, rotating shared keys make-before-break, auditing each step.

``inventory`` (keys.yaml) → ``plan`` (dry run) / ``offboard`` (``krl``, ``authorized_keys``, ``account``,
then ``rotate`` over ``remote`` with ``keypair``) → ``ledger`` (resumable) and ``audit`` (records);
``scheduler`` runs departures and periodic rotations inside bastiond, ``alerts`` flags departed logins,
``usage`` feeds ``bastionctl keys list``.
"""
