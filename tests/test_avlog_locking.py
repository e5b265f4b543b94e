"""The AV log on file systems without HDF5 file locking (many NFS and Lustre mounts): written, resumed
and read with locking disabled by HDF5_USE_FILE_LOCKING=FALSE, and by the automatic fallback when the
file system refuses the lock."""

import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from iseat.training import avlog
from iseat.training.avlog import PER_SAMPLE, AVLog, AVLogWriter

N = 12


def values(epoch):
    rng = np.random.default_rng(epoch)
    return {
        name: (rng.random(N).astype("f4") if kind == "f4" else rng.integers(0, 2, N).astype("i1"))
        for name, kind in PER_SAMPLE.items()
    }


def write_log(path, epochs, resume_epochs=0):
    writer = AVLogWriter(path, np.arange(N), {"config": {"seed": 0}, "seed": 0}, resume_epochs=resume_epochs)
    for epoch in range(resume_epochs, epochs):
        writer.write_epoch(epoch, values(epoch), weight_perturbed=True)
    writer.close()


def test_written_resumed_and_read_with_locking_disabled_by_the_environment(tmp_path):
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
        import numpy as np
        from test_avlog_locking import write_log, values
        from iseat.training.avlog import AVLog
        write_log({str(tmp_path / "av_log.h5")!r}, 2)
        write_log({str(tmp_path / "av_log.h5")!r}, 3, resume_epochs=2)
        with AVLog({str(tmp_path / "av_log.h5")!r}) as log:
            assert list(log.file["epoch"][:]) == [0, 1, 2]
            assert np.array_equal(log.values("av", epoch=2), values(2)["av"])
        print("ok")
    """)
    env = {"HDF5_USE_FILE_LOCKING": "FALSE", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_falls_back_when_the_file_system_refuses_the_lock(tmp_path, monkeypatch):
    opened = []

    def no_locks(path, mode="r", **kwargs):  # what h5py raises on a mount without lock support
        if not isinstance(path, (str, os.PathLike)):  # an already opened file id: no lock taken here
            return real_file(path, mode, **kwargs)
        opened.append(kwargs.get("locking"))
        if kwargs.get("locking") is not False:
            raise OSError(
                "Unable to synchronously open file (unable to lock file, errno = 38, "
                "error message = 'Function not implemented')"
            )
        return real_file(path, mode, **kwargs)

    real_file = h5py.File
    monkeypatch.setattr(avlog.h5py, "File", no_locks)
    path = tmp_path / "av_log.h5"
    write_log(path, 2)
    write_log(path, 3, resume_epochs=2)
    with AVLog(path) as log:
        assert list(log.file["epoch"][:]) == [0, 1, 2]
        assert np.array_equal(log.values("clean_correct", epoch=1), values(1)["clean_correct"])
    assert False in opened and None in opened


def test_other_open_errors_are_not_hidden(tmp_path):
    (tmp_path / "av_log.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="is not a readable HDF5 AV log"):
        AVLog(tmp_path / "av_log.h5")
