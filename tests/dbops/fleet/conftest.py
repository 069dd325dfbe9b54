"""The fleet tests' fixtures live in fleet_fixtures.py (imported by name, as tests/fingerprint.py is)."""

from fleet_fixtures import fleet_project, tenants  # noqa: F401  (fixtures, found by name)
