"""A module of the project that the revisions import (dbops must not keep it after the run).

Each upgrade() notes its revision in $SCENARIO_LOG, so a test can count the
upgrades that really ran.
"""
import os


def ran(revision: str) -> None:
    if os.environ.get("SCENARIO_LOG"):
        with open(os.environ["SCENARIO_LOG"], "a") as log:
            log.write(revision + "\n")
