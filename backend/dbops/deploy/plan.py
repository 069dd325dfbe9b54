"""The ``inv deploy --plan`` text: what a deploy would do now, step by step, after the preflight and dry run."""

from __future__ import annotations

from ..health import HealthResult
from ..redact import mask_url
from ..settings import Settings
from . import verify
from .report import DeployReport


def text(settings: Settings, r: DeployReport, *, seconds: float, no_backup: bool, allow_unsafe: bool,
         health: HealthResult | None = None) -> str:
    """The numbered steps ``inv deploy`` would take (``r``: the planned run's report; ``seconds``: its window;
    ``health``: the health URL's answer now, whose fields decide how its check is described)."""
    lines = ["", f"plan: `inv deploy --env {settings.env}` would now:"]
    n = 1
    lines.append(f"  {n}. take the deploy lock (one deploy at a time)")
    n += 1
    if settings.is_local and no_backup:
        lines.append(f"  {n}. skip the backup (--no-backup)")
    else:
        lines.append(f"  {n}. back up the database to {mask_url(settings.backup_url or None)}")
    n += 1
    rh = r.rehearsal
    if rh and rh.ran:
        stop = rh.errors and not allow_unsafe
        lines.append(f"  {n}. rehearse the pending revisions on a copy of the new backup ({rh.why}); rehearsed now "
                     f"on {rh.backup}: {rh.errors or 0} error(s), expected upgrade {rh.expected_upgrade_s}s"
                     + (" - would STOP here" if stop else ""))
        n += 1
    elif rh:
        lines.append(f"  {n}. no rehearsal: {rh.why}")
        n += 1
    lines.append(f"  {n}. apply {len(r.pending)} revision(s), each in its own transaction, lock_timeout="
                 f"{settings.lock_timeout_ms}ms, statement_timeout={settings.statement_timeout_ms}ms, up to "
                 f"{settings.lock_retries} attempt(s):")
    n += 1
    lines += [f"       {p.revision}  {p.doc}  ({p.file})" for p in r.pending]
    errors = sum(1 for f in r.lint if f.level == "error")
    if errors and not allow_unsafe:
        lines.append(f"     (would STOP before this: {errors} error-level lint finding(s); see above)")
    lines.append(f"  {n}. verify: database at head {r.head} (read on dbops' own connection)"
                 + (f", {verify.app_words(mask_url(settings.health_url), r.head, health)}"
                    if settings.health_url else ", no HEALTH_URL: the app is not checked"))
    n += 1
    lines.append(f"  {n}. monitor for {seconds:g}s")
    lines.append("nothing was changed.")
    return "\n".join(lines)
