"""The production job, ``inv deploy``: backup, dry run, upgrade, verify, monitor.

One module per step; :mod:`.pipeline` only orchestrates them:

- :mod:`.preflight`  what is deployed where, checked without changing anything
- :mod:`.lock`       one deploy at a time (a Postgres advisory lock)
- :mod:`.checksums`  applied migration files must not change afterwards
- :mod:`.upgrade`    ``alembic upgrade`` with timeouts and bounded retries
- :mod:`.monitor`    health URL + database watch after the upgrade
- :mod:`.rollback`   ``inv rollback``: fresh backup, then downgrade
- :mod:`.report`     the JSON record and summary of every run
"""
