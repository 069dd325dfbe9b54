"""The build arguments `inv image` and `inv compose-up` pass, and what compose needs from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbops.containers import compose, image
from dbops.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def test_the_build_ca_comes_from_dbops_build_ca(tmp_path):
    ca = tmp_path / "proxy-ca.pem"
    ca.write_text(PEM)
    args = image.build_args("dbops/python:3.11-slim", str(ca), {"HTTPS_PROXY": "http://proxy:3128"})
    assert args == {"PYTHON_IMAGE": "dbops/python:3.11-slim", "PIP_CA_CERT": PEM, "HTTPS_PROXY": "http://proxy:3128"}
    assert "PIP_CA_CERT" not in image.build_args("python:3.11-slim-bookworm", "none", {})


def test_without_dbops_build_ca_the_hosts_local_cas_are_passed():
    local = sorted(image.LOCAL_CA_DIR.glob("*.crt"))
    ca = image.build_ca(None)
    if not local:
        assert ca is None
    else:
        assert ca is not None and ca.count(image.PEM_MARK) >= len(local)
        assert all(crt.read_text().strip() in ca for crt in local)


@pytest.mark.parametrize("content,says", [(None, "cannot read"), ("not a certificate\n", "holds no PEM certificate")])
def test_a_bad_dbops_build_ca_names_the_variable(tmp_path, content, says):
    ca = tmp_path / "ca.pem"
    if content is not None:
        ca.write_text(content)
    with pytest.raises(ConfigError) as exc:
        image.build_ca(str(ca))
    assert exc.value.variable == "DBOPS_BUILD_CA" and says in exc.value.message and str(ca) in exc.value.message
    assert exc.value.exit_code == 2 and "none" in exc.value.hint


def test_compose_requires_exactly_the_stacks_secrets():
    assert compose.required_variables(ROOT) == ["POSTGRES_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY"]
