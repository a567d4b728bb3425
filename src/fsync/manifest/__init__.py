"""fsync's memory of a local root: the state database and the root's lock.

sqlite3 is used under this package and nowhere else.
"""

from fsync.manifest.lock import RootLock
from fsync.manifest.store import Manifest, RunRecord

__all__ = ["Manifest", "RootLock", "RunRecord"]
