"""``python -m dbops``: the ``dbops`` command."""

from dbops.tasks import main

main()
