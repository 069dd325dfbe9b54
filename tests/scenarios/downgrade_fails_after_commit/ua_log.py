"""Each upgrade() notes its revision in runs.log, so a test can count the upgrades that really ran."""
from pathlib import Path

LOG = Path(__file__).resolve().parent / "runs.log"


def ran(revision: str) -> None:
    with LOG.open("a") as fh:
        fh.write(revision + "\n")
