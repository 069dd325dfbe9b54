"""dbops.postgres: the pooled-connection check (Neon, Supabase, port 6543)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from dbops import postgres
from dbops.errors import Refused


@pytest.mark.parametrize(
    "url, direct",
    [
        ("postgresql://u:pw@ep-cool-sun-123456-pooler.eu-central-1.aws.neon.tech/app",
         "ep-cool-sun-123456.eu-central-1.aws.neon.tech"),
        ("postgresql://u:pw@aws-0-eu-central-1.pooler.supabase.com:5432/postgres", "db.<project-ref>.supabase.co"),
        ("postgresql://u:pw@db.example.com:6543/app", "db.example.com"),
    ],
)
def test_pooled_endpoints_are_refused_naming_the_direct_host(url, direct):
    with pytest.raises(Refused) as info:
        postgres.refuse_pooled(make_url(url))
    assert direct in info.value.hint
    assert "pw" not in info.value.render().replace("pooler", "")


def test_direct_hosts_pass():
    for url in ("postgresql://u:pw@ep-cool-sun-123456.eu-central-1.aws.neon.tech/app", "postgresql://u@127.0.0.1:5432/app"):
        assert postgres.pooled_direct_host(make_url(url)) is None, url  # not a pooled endpoint
        postgres.refuse_pooled(make_url(url))  # so no PooledConnectionRefused
