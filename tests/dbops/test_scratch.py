"""Scratch space for throwaway servers: no writable temporary folder is one clear error, not tempfile's.

A read-only root file system (``docker run --read-only``) is tested for real in tests/docker.
"""

from __future__ import annotations

import tempfile

import pytest

from dbops import scratch
from dbops.errors import NoScratchSpace


def test_a_usable_temporary_folder_is_made_and_removed():
    with scratch.temporary_directory("dbops-test-", purpose="a test") as path:
        assert path.is_dir() and path.name.startswith("dbops-test-")
        (path / "f").write_text("x")
    assert not path.exists()


def test_a_missing_temporary_folder_is_one_clear_error(tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    monkeypatch.setattr(tempfile, "tempdir", str(gone))  # TMPDIR as tempfile resolved it, now deleted
    with pytest.raises(NoScratchSpace) as exc:
        scratch.mkdtemp("dbops-test-", purpose="the round trip's throwaway PostgreSQL server")
    err = exc.value
    assert err.purpose == "the round trip's throwaway PostgreSQL server"
    assert str(gone) in err.tried and "No such file or directory" in err.reason
    text = err.render()
    assert "TMPDIR" in text and "Traceback" not in text
