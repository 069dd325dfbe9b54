"""Real PostgreSQL servers of other majors, and servers that take SSL connections only.

:class:`SSLServer` is a throwaway PostgreSQL of a chosen major (its programs
found as dbops finds them: ``inv pg-clients``' folder, the system's
``/usr/lib/postgresql/<major>/bin``, the embedded wheel) with ``ssl=on``, a CA
and a server certificate made here with ``openssl`` (subjectAltName
``localhost`` and ``127.0.0.1``, so ``verify-full`` holds), a password for
``postgres`` and a ``pg_hba.conf`` of ``hostssl ... scram-sha-256`` lines only:
a plain connection is refused, as Neon, RDS with ``rds.force_ssl`` and
Supabase refuse it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from dbops import postgres
from dbops.postgres import client_install, clients
from dbops.servers.embedded import FAST_OPTIONS, EmbeddedServer, run_as

#: the password of ``postgres`` on SSL servers (tests assert it never prints)
SSL_PASSWORD = "Tls-0nly-Pa55-qwz"


def ensure_clients(*majors: int) -> None:
    """The client tools of ``majors`` in dbops' clients folder (what `inv pg-clients` does; a no-op when there)."""
    client_install.install(list(majors))


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    crt, key = folder / f"{name}.crt", folder / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
             "-days", "2", "-subj", f"/CN={name}")
    return crt, key


def make_server_cert(folder: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A server certificate for localhost / 127.0.0.1 signed by ``ca``: (certificate, key)."""
    crt, key, csr, ext = (folder / "server.crt", folder / "server.key", folder / "server.csr", folder / "san.ext")
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-out", str(crt), "-days", "2", "-extfile", str(ext))
    return crt, key


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


class SSLServer(EmbeddedServer):
    """A PostgreSQL ``major`` on 127.0.0.1 that accepts SSL connections with a password only."""

    name = "ssl-test"

    def __init__(self, directory: Path, major: int):
        bin_dir = clients.server_bin(major)
        if bin_dir is None:
            raise RuntimeError(f"no PostgreSQL {major} server programs; run `inv pg-clients --major {major}`")
        super().__init__(directory, port=0, options=dict(FAST_OPTIONS), bin_dir=bin_dir)
        self.major = major
        self.certs = self.directory / "certs"
        self.ca: Path | None = None
        self._plain = True  # trust over plain TCP until the password is set

    def url(self, database: str | None = None, *, sslmode: str = "verify-full", rootcert: Path | None = None) -> URL:
        url = super().url(database)
        if self._plain:
            return url
        query = {"sslmode": sslmode}
        if sslmode in ("verify-ca", "verify-full"):
            query["sslrootcert"] = str(rootcert or self.ca)
        return url.set(password=SSL_PASSWORD, query=query)

    def start(self) -> URL:
        if (self.pgdata / "PG_VERSION").is_file():
            return super().start()
        self.init()
        super().start()  # plain, trust: set the password, then lock it down
        with postgres.admin_connection(super().url()) as conn:
            conn.execute(sa.text(f"ALTER USER postgres PASSWORD '{SSL_PASSWORD}'"))
        self.stop()
        self.ca = make_ca(self.certs, "test-ca")[0]
        crt, key = make_server_cert(self.certs, (self.ca, self.certs / "test-ca.key"))
        key.chmod(0o600)
        self._chown(run_as(), self.directory)
        (self.pgdata / "pg_hba.conf").write_text(
            "# SSL only: no 'host' or 'local' lines\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostssl all all ::1/128 scram-sha-256\n"
        )
        self.options.update(ssl="on", ssl_cert_file=str(crt), ssl_key_file=str(key))
        self._plain = False
        return super().start()

    def describe(self) -> str:
        return f"SSL-only PostgreSQL {self.major} on 127.0.0.1:{self.port}"
