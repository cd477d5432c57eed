#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks.
#
#   scripts/pg_throwaway.sh start DIR PORT   # prints the TCP URL on its last line
#   scripts/pg_throwaway.sh stop  DIR PORT   # stops it and deletes what `start` created
#
# `start` creates DIR/data (initdb), listens on 127.0.0.1:PORT only, puts its Unix socket in
# DIR/run, and creates a `fieldvision` role (password, CREATEDB) owning a `fieldvision`
# database. Local-socket connections are trusted (only the cluster's owner can reach DIR/run);
# TCP connections need the password (scram-sha-256), so tests can check a wrong password fails.
#
# Environment:
#   PG_BIN           directory of initdb/pg_ctl (default: newest /usr/lib/postgresql/*/bin,
#                    else the PATH)
#   PG_PASSWORD      the fieldvision role's password (default: fieldvision-throwaway)
#   PG_FSYNC=off     no fsync and asynchronous commit: faster, and fine for a cluster that is
#                    deleted afterwards; leave unset to benchmark with durable commits
#
# PostgreSQL refuses to run as root, so as root every server command runs as the `postgres`
# user (runuser); DIR's parents must then be traversable by that user (e.g. under /tmp).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR PORT" >&2; exit 2; }
[[ $# -eq 3 ]] || usage
action=$1
dir=$2
port=$3
[[ $port =~ ^[0-9]+$ ]] || usage

if [[ -z ${PG_BIN:-} ]]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -z $PG_BIN ]]; then
        PG_BIN=$(dirname "$(command -v initdb || echo /nonexistent/initdb)")
    fi
fi
if [[ ! -x $PG_BIN/initdb || ! -x $PG_BIN/pg_ctl ]]; then
    echo "error: PostgreSQL server binaries not found (set PG_BIN)" >&2
    exit 3
fi

run_as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

data=$dir/data
sock=$dir/run
log=$dir/postgres.log

case $action in
start)
    mkdir -p "$dir"
    if [[ -e $data ]]; then
        echo "error: $data already exists (stop it first)" >&2
        exit 1
    fi
    mkdir -p "$data" "$sock"
    : >"$log"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$dir" "$data" "$sock" "$log"
        if ! runuser -u postgres -- test -w "$dir"; then
            echo "error: user postgres cannot reach $dir (a parent directory is private)" >&2
            exit 1
        fi
    fi
    chmod 700 "$data"
    pwfile=$(run_as_owner mktemp "$dir/pw.XXXXXX")
    printf '%s\n' "${PG_PASSWORD:-fieldvision-throwaway}" | run_as_owner tee "$pwfile" >/dev/null
    run_as_owner "$PG_BIN/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >>"$log" 2>&1
    opts="-p $port -k $sock -c listen_addresses=127.0.0.1"
    if [[ ${PG_FSYNC:-on} == off ]]; then
        opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    run_as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 30 -o "$opts" start >/dev/null
    # psql reads the password from a file (not the command line), so it never appears in
    # a process list.
    run_as_owner "$PG_BIN/psql" -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres \
        -d postgres -v pwfile="$pwfile" >/dev/null <<'SQL'
\set pw `cat :pwfile`
CREATE ROLE fieldvision LOGIN CREATEDB PASSWORD :'pw';
CREATE DATABASE fieldvision OWNER fieldvision;
SQL
    rm -f "$pwfile"
    echo "postgresql://fieldvision:${PG_PASSWORD:-fieldvision-throwaway}@127.0.0.1:$port/fieldvision"
    ;;
stop)
    if [[ -f $data/postmaster.pid ]]; then
        run_as_owner "$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null
    fi
    # Delete only what `start` created, never DIR's other contents.
    rm -rf "$data" "$sock" "$log" "$dir"/pw.*
    rmdir "$dir" 2>/dev/null || true
    ;;
*)
    usage
    ;;
esac
