#!/usr/bin/env bash
# Entrypoint of the offline-built dbops/postgres image.
#
# Mimics the parts of the official `postgres` image's entrypoint that matter:
#   POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER     (default: postgres)
#   POSTGRES_DB       (default: $POSTGRES_USER)
#   POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (default: scram-sha-256)
#   *_FILE variants (e.g. POSTGRES_PASSWORD_FILE) for the above
#   /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz run once on a fresh PGDATA
# On an empty PGDATA (default /var/lib/postgresql/data) it runs initdb as the
# postgres user, allows password (scram-sha-256) connections from any host,
# creates the database, then runs `postgres` in the foreground listening on
# '*' port 5432. On an existing PGDATA it just starts the server.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%F %T UTC')" "$*" >&2; }

# file_env VAR [DEFAULT]: VAR from $VAR or from the file named by $VAR_FILE.
file_env() {
    local var="$1" fileVar="${1}_FILE" def="${2:-}"
    if [ -n "${!var:-}" ] && [ -n "${!fileVar:-}" ]; then
        log "error: both $var and $fileVar are set (but are exclusive)"
        exit 1
    fi
    local val="$def"
    if [ -n "${!var:-}" ]; then
        val="${!var}"
    elif [ -n "${!fileVar:-}" ]; then
        val="$(<"${!fileVar}")"
    fi
    export "$var"="$val"
    unset "$fileVar"
}

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

# `docker run IMAGE -c foo=bar` → `postgres -c foo=bar`
if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
    # Running as root: fix ownership of the (possibly freshly mounted) data
    # directory and socket directory, then re-exec as the postgres user.
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

process_init_files() {
    local f
    for f in "$@"; do
        case "$f" in
            *.sh)
                # shellcheck disable=SC1090  # init scripts are user-provided
                if [ -x "$f" ]; then log "running $f"; "$f"
                else log "sourcing $f"; . "$f"; fi ;;
            *.sql)    log "running $f"; psql_run "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) log "running $f"; gunzip -c "$f" | psql_run "$POSTGRES_DB" ;;
            *)        log "ignoring $f" ;;
        esac
    done
}

# psql_run DBNAME [psql args...]: as the superuser over the unix socket.
psql_run() {
    local db="$1"; shift
    PGHOST='' PGHOSTADDR='' psql -X -q -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
        --no-password --dbname "$db" "$@"
}

init_database() {
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    local auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

    if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != 'trust' ]; then
        cat >&2 <<'EOM'
Error: Database is uninitialized and superuser password is not specified.
       Specify a non-empty POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) for
       the superuser, e.g. "-e POSTGRES_PASSWORD=password" on "docker run".
       (POSTGRES_HOST_AUTH_METHOD=trust allows connections without one;
       that is not recommended.)
EOM
        exit 1
    fi

    log "initialising database cluster in $PGDATA (superuser '$POSTGRES_USER', host auth $auth)"
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a flag string
    set -- --username="$POSTGRES_USER" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host="$auth" $POSTGRES_INITDB_ARGS
    if [ -n "$POSTGRES_PASSWORD" ]; then
        # The password goes through a pipe, never the command line.
        initdb "$@" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") >/dev/null
    else
        initdb "$@" >/dev/null
    fi

    # Connections from any address (other containers, the host via a
    # published port) authenticate with the password.
    printf '\n# added by docker-entrypoint.sh\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
    printf "\n# added by docker-entrypoint.sh\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

    # Temporary server on the unix socket only, for DB creation and init files.
    PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w -t 60 start >/dev/null

    if [ "$POSTGRES_DB" != 'postgres' ]; then
        log "creating database '$POSTGRES_DB'"
        psql_run postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi

    if [ -d /docker-entrypoint-initdb.d ]; then
        shopt -s nullglob
        process_init_files /docker-entrypoint-initdb.d/*
        shopt -u nullglob
    fi

    pg_ctl -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
    unset PGPASSWORD
    log "initialisation complete; starting postgres"
}

if [ "$1" = 'postgres' ]; then
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        if [ -n "$(ls -A "$PGDATA" 2>/dev/null)" ]; then
            # initdb refuses non-empty dirs; a volume root may hold lost+found.
            log "warning: $PGDATA is not empty but has no PG_VERSION; initdb may refuse it"
        fi
        init_database
    else
        log "PostgreSQL database directory appears to contain a database; skipping initialisation"
    fi
    # Never leak the password into the server's environment.
    unset POSTGRES_PASSWORD
fi

exec "$@"
