"""The scenario's models: they import a package that is not installed, as a forgotten dependency would."""

import bm_not_installed  # noqa: F401 - the failure under test
import sqlalchemy as sa

metadata = sa.MetaData()
