"""The production job, ``inv deploy``, and ``inv rollback`` / ``inv accept-migration-change``.

One module per step; :mod:`.pipeline` lists the steps and hands them to :mod:`.run`:

- :mod:`.pipeline`     ``deploy()``: the steps, run in order inside an ExitStack (lock, connection)
- :mod:`.run`          a run's bookkeeping: the step loop, report, artifacts, history row, webhook, summary
- :mod:`.report`       :class:`DeployReport`: typed records of the steps with timings, revisions, backup,
                       outcome, recovery (statuses as enums); ``to_dict()`` is its JSON
- :mod:`.preflight`    the deploy target and every read-only check before anything changes
- :mod:`.checksums`    applied migration files must not change; ``accept_migration_change()``
- :mod:`.history`      ``dbops.deploys``: what each run did (for rollback)
- :mod:`.backup_step`  the backup step: hands off to :mod:`dbops.backup`
- :mod:`.verify`       at head (read on dbops' own connection, never through env.py) and the app healthy
- :mod:`.plan`         the ``--plan`` text
- :mod:`.failure`      after a failed step: the state read back, the recovery commands, ``--auto-rollback``
- :mod:`.rollback`     ``inv rollback``: plan, reversibility check, fresh backup, downgrade, verify

The services it runs on: one deploy at a time is :mod:`dbops.postgres.lock` (a Postgres advisory
lock), ``alembic upgrade`` with timeouts and bounded retries is :mod:`dbops.migrations.upgrade`, the
``dbops`` schema's tables are :mod:`dbops.postgres.bookkeeping`.  The monitoring window after the
upgrade is :mod:`dbops.monitor`; the dry run is :mod:`dbops.dryrun`.
"""
