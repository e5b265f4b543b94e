"""Open an HDF5 file that may be damaged or still being written, failing within seconds instead of hanging.

A reader in SWMR mode retries every metadata read that fails its checksum, since a writer may be
rewriting that block; HDF5 allows 100 tries with a delay that doubles up to an hour, so a truncated
file (a copy cut short, a full disk) keeps the reader waiting for hours. Here a file is first checked
against its superblock (signature, and the end-of-file address it records against its real size),
then opened in SWMR mode with a bounded number of metadata read attempts, and its whole tree is
walked once, so damage shows up at open time as one `DamagedFile` error.
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct
import time
from pathlib import Path

import h5py

from iseat.common.errors import first_line

SIGNATURE = b"\x89HDF\r\n\x1a\n"
WRITE_ACCESS_FLAGS = 0x1 | 0x4  # superblock v2/v3 status flags: open for writing, open for SWMR writing
READ_ATTEMPTS = 30  # SWMR metadata read attempts: about 2 s of back-off in all, ample for a live writer
GROWTH_WAIT_S = 3.0  # how long a file being written may show a recorded end beyond its current size


# What HDF5 says when the file system refuses its file locks (many NFS and Lustre mounts).
LOCKING_ERRORS = ("unable to lock file", "file locking", "errno = 37", "errno = 38")


def open_hdf5(path, mode, **kwargs) -> h5py.File:
    """h5py.File, retried with HDF5 file locking off where the file system cannot lock. Setting
    HDF5_USE_FILE_LOCKING=FALSE turns locking off from the start (README: shared file systems)."""
    try:
        return h5py.File(path, mode, **kwargs)
    except OSError as err:
        if "locking" in kwargs or not is_locking_error(err):
            raise
    return h5py.File(path, mode, locking=False, **kwargs)


def is_locking_error(err: Exception) -> bool:
    return any(text in str(err).lower() for text in LOCKING_ERRORS)


class DamagedFile(Exception):
    """The file is not an HDF5 file, is truncated, or its metadata does not read back; one line."""


def superblock(path: Path) -> tuple[int, int | None]:
    """(status flags, recorded end-of-file address) of a version 2/3 superblock; (0, None) for older ones."""
    with open(path, "rb") as f:
        head = f.read(48)
    if not head.startswith(SIGNATURE):
        raise DamagedFile("not an HDF5 file (no HDF5 signature at its start)")
    version = head[8]
    if version not in (2, 3):
        return 0, None
    offset_size = head[9]
    if offset_size != 8 or len(head) < 12 + 4 * offset_size:
        raise DamagedFile("its superblock is cut short or unreadable")
    base, _extension, end = struct.unpack_from("<QQQ", head, 12)
    return head[11], base + end


def check_not_truncated(path: Path) -> None:
    """The recorded end of file must lie within the file; a live writer is given a moment to catch up."""
    flags, recorded_end = superblock(path)
    deadline = time.monotonic() + (GROWTH_WAIT_S if flags & WRITE_ACCESS_FLAGS else 0)
    while recorded_end is not None and recorded_end > os.path.getsize(path):
        if time.monotonic() >= deadline:
            raise DamagedFile(f"truncated: {os.path.getsize(path)} bytes, but its superblock records {recorded_end}")
        time.sleep(0.1)
        flags, recorded_end = superblock(path)


@functools.cache
def _set_read_attempts():
    """HDF5's H5Pset_metadata_read_attempts (h5py does not wrap it), from the library h5py loaded; None if
    it cannot be found (then HDF5's default applies)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libhdf5" in line}
    except OSError:
        return None
    for lib in sorted(paths):
        if "hl" not in Path(lib).name:
            try:
                function = ctypes.CDLL(lib).H5Pset_metadata_read_attempts
            except (OSError, AttributeError):
                continue
            function.argtypes = [ctypes.c_int64, ctypes.c_uint]
            return function
    return None


def open_swmr_reader(path) -> h5py.File:
    """`path` opened read-only in SWMR mode (also while a writer appends); DamagedFile within seconds if
    it is truncated or its metadata does not read back."""
    path = Path(path)
    check_not_truncated(path)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    set_attempts = _set_read_attempts()
    if set_attempts is not None:
        set_attempts(fapl.id, READ_ATTEMPTS)
    flags = h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ
    try:
        try:
            file = h5py.File(h5py.h5f.open(os.fsencode(path), flags, fapl=fapl))
        except OSError as err:
            if not is_locking_error(err):
                raise
            fapl.set_file_locking(False, True)  # a file system without locks (NFS, Lustre): read without
            file = h5py.File(h5py.h5f.open(os.fsencode(path), flags, fapl=fapl))
    except (OSError, RuntimeError, ValueError) as err:
        raise DamagedFile(f"does not open as HDF5 ({first_line(err)})") from None
    try:
        file.visititems(read_shape)
        dict(file.attrs)
    except (OSError, RuntimeError, ValueError, KeyError) as err:
        file.close()
        raise DamagedFile(f"its metadata does not read back ({first_line(err)})") from None
    return file


def read_shape(name, obj) -> None:
    """Touches each dataset's metadata; returns None so that `visititems` goes on."""
    if isinstance(obj, h5py.Dataset):
        _ = obj.shape
