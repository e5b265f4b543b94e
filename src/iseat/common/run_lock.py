"""One writer per output: an exclusive lock on a lock file, held for the writing process's life.

`hold(lock_path, what)` takes `fcntl.flock(LOCK_EX | LOCK_NB)` on `lock_path` and records the holder
(host, PID, start time) in it; a second writer is refused with one line naming the holder. The kernel
releases a flock when its process dies, however it dies, so a lock left by a killed process never blocks
the restart (a SLURM requeue resumes). The file is removed on release, while still locked; a process that
opened the old file just before is detected (its inode is no longer the path's) and tries again.

Shared file systems: on NFS, Linux emulates flock with POSIX byte-range locks, which hold across
nodes; the server frees the lock of a node that crashed only after its lease time (about 90 s), so a
restart on another node may be refused for that long. Lustre and some other mounts support flock only
when mounted with `-o flock`; where the file system refuses locking the run goes on unlocked and says so.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from iseat.common.errors import OutputLocked


def holder_record() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def describe_holder(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode())
        return f"host {record['host']}, PID {record['pid']}, since {record['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def acquire(lock_path: Path, what: str) -> int | None:
    """The locked file's descriptor; None where the file system does not support flock."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = describe_holder(fd) if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
            os.close(fd)
            if holder is None:
                return None
            raise OutputLocked(
                f"{what} is in use by another iseat process ({holder}); wait for it to end or "
                f"stop it, or choose another output"
            ) from None
        try:
            current = os.stat(lock_path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            try:
                os.ftruncate(fd, 0)
                record = json.dumps(holder_record()).encode()
                if os.pwrite(fd, record, 0) != len(record):  # a short write: the disk (or ulimit -f) is full
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(lock_path))
            except OSError as err:  # e.g. a full disk: leave no empty lock file behind (we still hold it)
                with contextlib.suppress(OSError):
                    os.unlink(lock_path)
                os.close(fd)
                err.filename = err.filename or str(lock_path)
                raise
            return fd
        os.close(fd)  # the previous holder removed this file after we opened it: lock the new one


@contextlib.contextmanager
def hold(lock_path, what: str, say=print):
    """Hold the exclusive lock on `lock_path` (its folder must exist) for the `with` block."""
    lock_path = Path(lock_path)
    fd = acquire(lock_path, what)
    if fd is None:
        say(
            f"warning: the file system of {lock_path.parent} does not support file locks; "
            f"{what} is not protected against a second writer"
        )
    try:
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(FileNotFoundError):
                lock_path.unlink()
            os.close(fd)
