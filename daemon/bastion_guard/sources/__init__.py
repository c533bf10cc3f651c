"""Log sources: where lines come from, and how to resume after a restart or a rotation.

:class:`FileFollower` follows one log file (:mod:`.file`); :mod:`.base` holds the batch and position types
every source shares, and :mod:`.identity` how a saved position recognises its file after rotation.
"""

from bastion_guard.sources.base import Batch, FilePosition, Follower
from bastion_guard.sources.file import FileFollower

__all__ = ["Batch", "FileFollower", "FilePosition", "Follower"]
