"""The production job, ``inv deploy``, and ``inv rollback`` / ``inv accept-migration-change``.

One module per step; :mod:`.pipeline` lists the steps and hands them to :mod:`.run`:

- :mod:`.pipeline`     ``deploy()``: the steps, run in order inside an ExitStack (lock, connection)
- :mod:`.run`          a run's bookkeeping: the step loop, report, artifacts, history row, webhook, summary
- :mod:`.report`       :class:`DeployReport`: steps with timings, revisions, backup, outcome, recovery
- :mod:`.preflight`    the deploy target and every read-only check before anything changes
- :mod:`.lock`         one deploy at a time (a Postgres advisory lock)
- :mod:`.checksums`    applied migration files must not change; ``accept_migration_change()``
- :mod:`.history`      ``dbops.deploys``: what each run did (for rollback)
- :mod:`.backup_step`  the backup step: hands off to :mod:`dbops.backup`
- :mod:`.upgrade`      ``alembic upgrade`` with timeouts and bounded retries on lock_timeout
- :mod:`.verify`       at head (``alembic current --check-heads``) and the app healthy
- :mod:`.plan`         the ``--plan`` text
- :mod:`.failure`      after a failed step: the state read back, the recovery commands, ``--auto-rollback``
- :mod:`.rollback`     ``inv rollback``: plan, reversibility check, fresh backup, downgrade, verify

The monitoring window after the upgrade is :mod:`dbops.monitor`; the dry run is :mod:`dbops.dryrun`.
"""
