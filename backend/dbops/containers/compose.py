"""The compose CLI (``docker compose``, or Debian's ``docker-compose``) on the repo's docker-compose.yml."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from ..errors import ComposeUnavailable, ToolFailed

log = logging.getLogger(__name__)


def compose_command() -> list[str]:
    """The compose CLI here: ``docker compose`` (v2 plugin) if it answers, else ``docker-compose`` (v1)."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    v1 = shutil.which("docker-compose")
    if v1:
        return [v1]
    raise ComposeUnavailable(
        "neither `docker compose` nor `docker-compose` is installed",
        hint="run .ci/install-docker (installs Debian's docker-compose), or install the docker compose plugin",
    )


def compose(root: Path, args: list[str], *, env: dict[str, str] | None = None, timeout: float = 900,
            capture: bool = False, project: str | None = None):  # -> subprocess.CompletedProcess
    """Run the compose CLI on ``root``/docker-compose.yml with ``args``; raises ToolFailed on a non-zero exit."""
    argv = [*compose_command(), "--project-directory", str(root), "-f", str(root / "docker-compose.yml"),
            *(["-p", project] if project else []), *args]
    log.info("compose %s", " ".join(args))
    try:
        proc = subprocess.run(argv, env={**os.environ, **(env or {})}, timeout=timeout, check=False,
                              capture_output=capture, text=True)
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed(" ".join(argv[:2] + args[:1]), None, str(exc.output or "")[-2000:]) from exc
    if proc.returncode != 0:
        tail = ((proc.stdout or "") + (proc.stderr or ""))[-3000:] if capture else ""
        raise ToolFailed(f"compose {' '.join(args[:1])}", proc.returncode, tail,
                         hint="read the compose output above; `inv compose-down` cleans up")
    return proc
