"""The compose CLI (``docker compose``, or Debian's ``docker-compose``) on the repo's docker-compose.yml."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..errors import ComposeUnavailable, ToolFailed
from .image import build_ca

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


def command_name() -> str:
    """How a user types the compose CLI here: ``docker compose`` or ``docker-compose`` (for printed commands)."""
    argv = compose_command()
    return "docker compose" if len(argv) == 2 else "docker-compose"


def migrate_command() -> str:
    """The command that runs the deploy job in the stack (printed by ``inv compose-up``; run in the repo root)."""
    return f"{command_name()} --profile migrate run --rm migrate"


def build_env(ca_setting: str | None) -> dict[str, str]:
    """What compose needs to build the images here (it builds missing ones at ``up``): pip's extra CAs
    (``PIP_CA_CERT``, a build argument in docker-compose.yml) from :func:`.image.build_ca` of the settings'
    ``build_ca``, unless already set in the environment compose gets."""
    if os.environ.get("PIP_CA_CERT"):
        return {}
    ca = build_ca(ca_setting)
    return {"PIP_CA_CERT": ca} if ca else {}


#: ``${VAR:?message}`` in docker-compose.yml: compose refuses every command while VAR is unset or empty
_REQUIRED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?")


def required_variables(root: Path) -> list[str]:
    """The variables docker-compose.yml requires (``${VAR:?}``): the stack's secrets."""
    text = (root / "docker-compose.yml").read_text()
    lines = (line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return sorted(set(_REQUIRED.findall("\n".join(lines))))


def compose(root: Path, args: list[str], *, env: dict[str, str] | None = None, timeout: float = 900,
            capture: bool = False, project: str | None = None,
            secrets_needed: bool = True):  # -> subprocess.CompletedProcess
    """Run the compose CLI on ``root``/docker-compose.yml with ``args``; raises ToolFailed on a non-zero exit.

    ``secrets_needed=False`` (``down``, ``ps``): the required variables that are not set get a placeholder,
    since compose checks them for every command, also for those that never start a container.
    """
    argv = [*compose_command(), "--project-directory", str(root), "-f", str(root / "docker-compose.yml"),
            *(["-p", project] if project else []), *args]
    full_env = {**os.environ, **(env or {})}
    if not secrets_needed:
        full_env.update({v: "unused-by-this-command" for v in required_variables(root) if not full_env.get(v)})
    log.info("compose %s", " ".join(args))
    try:
        proc = subprocess.run(argv, env=full_env, timeout=timeout, check=False,
                              capture_output=capture, text=True)
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed(" ".join(argv[:2] + args[:1]), None, str(exc.output or "")[-2000:]) from exc
    if proc.returncode != 0:
        tail = ((proc.stdout or "") + (proc.stderr or ""))[-3000:] if capture else ""
        raise ToolFailed(f"compose {' '.join(args[:1])}", proc.returncode, tail,
                         hint="read the compose output above; `inv compose-down` cleans up")
    return proc
