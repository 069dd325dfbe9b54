"""The job image (and the compose stack's S3 image): ``docker build`` of the repo; nothing is made on the host.

The Dockerfiles fetch what they need while they build (pip from the package
index, apt from the base image's Debian mirror), so ``git clone … && docker
build .`` works wherever the build has a network: Render, CI, a laptop.  What
this module adds for ``inv image``, ``inv compose-up --build`` and the tests is
only build arguments:

* ``PYTHON_IMAGE``: the base (the setting ``python_image``: ``DBOPS_PYTHON_IMAGE``; the offline
  ``dbops/python:3.11-slim`` of docker/base-images on machines without a registry);
* ``PIP_CA_CERT``: extra CA certificates pip trusts, for a package index reached
  through an intercepting proxy: the PEM file the setting ``build_ca``
  (``DBOPS_BUILD_CA``) names, else this host's local CAs
  (``/usr/local/share/ca-certificates/*.crt``: what it trusts beyond Debian's
  defaults); ``DBOPS_BUILD_CA=none`` passes none.  The Dockerfiles use them in
  their build stages only (``docker/pip-trust-ca``);
* ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` (either case) when they are set here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..settings import BUILD_CA_VAR, DEFAULT_PYTHON_IMAGE
from . import engine

log = logging.getLogger(__name__)

DEFAULT_TAG = "dbops-job:latest"
S3_TAG = "dbops-s3:latest"
#: the variable naming a PEM file of CA certificates for pip inside the build
#: where Debian keeps the CAs a machine trusts beyond the defaults (update-ca-certificates)
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
PEM_MARK = "-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    id: str
    size_bytes: int
    seconds: float

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6


def build_ca(setting: str | None) -> str | None:
    """The PEM text of the extra CAs pip trusts in the build (None: none).

    ``setting``: the settings' ``build_ca`` (``DBOPS_BUILD_CA``): a PEM file, ``none``, or None for the local CAs.
    """
    raw = (setting or "").strip()
    if raw.lower() == "none":
        return None
    if raw:
        path = Path(raw).expanduser()
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(BUILD_CA_VAR, f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
                              hint=f"point {BUILD_CA_VAR} at a PEM file of CA certificates, or set it to none",
                              ) from None
        if PEM_MARK not in text:
            raise ConfigError(BUILD_CA_VAR, f"{path} holds no PEM certificate ({PEM_MARK} ...)",
                              hint=f"point {BUILD_CA_VAR} at a PEM file of CA certificates, or set it to none")
        return text
    texts = []
    for crt in sorted(LOCAL_CA_DIR.glob("*.crt")):
        try:
            text = crt.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if PEM_MARK in text:
            texts.append(text.strip() + "\n")
    return "".join(texts) or None


def build_args(python_image: str, ca_setting: str | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The build arguments of both Dockerfiles: the base, pip's extra CAs (if any: :func:`build_ca` of
    ``ca_setting``), the proxy variables set in ``environ`` (default: this process's, handed to the build)."""
    environ = os.environ if environ is None else environ
    args = {"PYTHON_IMAGE": python_image}
    ca = build_ca(ca_setting)
    if ca:
        args["PIP_CA_CERT"] = ca
    args.update({k: environ[k] for k in PROXY_VARS if environ.get(k)})
    return args


def build_job_image(root: Path, *, ca_setting: str | None, tag: str = DEFAULT_TAG,
                    python_image: str = DEFAULT_PYTHON_IMAGE, environ: Mapping[str, str] | None = None) -> BuiltImage:
    """``docker build`` of ``root`` with its ``Dockerfile``: the job image (``ca_setting``: the settings'
    ``build_ca``)."""
    return _build(root, "Dockerfile", tag, build_args(python_image, ca_setting, environ))


def build_s3_image(root: Path, *, ca_setting: str | None, tag: str = S3_TAG, python_image: str = DEFAULT_PYTHON_IMAGE,
                   environ: Mapping[str, str] | None = None) -> BuiltImage:
    """The SeaweedFS image of the compose ``s3`` service (``docker/s3/Dockerfile``; ``ca_setting``: the settings'
    ``build_ca``)."""
    return _build(root, "docker/s3/Dockerfile", tag, build_args(python_image, ca_setting, environ))


def _build(root: Path, dockerfile: str, tag: str, buildargs: dict[str, str]) -> BuiltImage:
    log.info("docker build %s (%s) on %s%s", tag, dockerfile, buildargs["PYTHON_IMAGE"],
             ", pip trusts the extra CAs" if "PIP_CA_CERT" in buildargs else "")
    start = time.monotonic()
    image = engine.build_image(root, tag=tag, dockerfile=dockerfile, buildargs=buildargs)
    return BuiltImage(tag=tag, id=image.id, size_bytes=image.attrs["Size"], seconds=time.monotonic() - start)
