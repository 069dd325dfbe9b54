"""The fleet tests' fixtures live in fleet_fixtures.py (imported from the package)."""

from .fleet_fixtures import fleet_project, tenants  # noqa: F401  (fixtures, found by name)
