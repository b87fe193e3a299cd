"""a2f_jax.io_utils: atomic writers leave nothing half-written and give files the user's umask."""

from __future__ import annotations

import os
import pathlib
import stat

import numpy as np
import pytest

from a2f_jax import io_utils


def _mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)])
def test_atomic_writers_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        assert io_utils.current_umask() == umask
        io_utils.atomic_write_json(tmp_path / "a.json", {"x": 1})
        io_utils.atomic_write_text(tmp_path / "b.txt", "b")
        io_utils.atomic_save_npy(tmp_path / "c.npy", np.zeros(2))
        io_utils.atomic_savez(tmp_path / "d.npz", x=np.zeros(2))
        with io_utils.atomic_dir(tmp_path / "dir") as tmp:
            (tmp / "inner.txt").write_text("i")
    finally:
        os.umask(old)
    for name in ("a.json", "b.txt", "c.npy", "d.npz"):
        assert _mode(tmp_path / name) == file_mode, name
    assert _mode(tmp_path / "dir") == dir_mode and _mode(tmp_path / "dir" / "inner.txt") == file_mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.txt", "c.npy", "d.npz", "dir"]


def test_failed_writes_leave_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with io_utils.atomic_path(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        with io_utils.atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
