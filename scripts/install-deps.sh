#!/usr/bin/env bash
# Installs what Portcullis needs to build, run `portcullis dev` and run the
# tests, on a fresh Debian machine. Idempotent: only missing pieces are
# installed. Needs root (or sudo) for apt-get.
#   apt:  PostgreSQL server + client, libclang (pg_query's bindgen), pgbouncer
#         (benchmark), the JDBC driver and a JRE, OpenSSL, Node.js, pip
#         Chromium (browser tests of the approvals UI), tmux (psql driven as
#         a person would in the end-to-end tests)
#   pip:  psycopg 3, asyncpg, aiosmtpd (SMTP sink for the e-mail tests)
#   npm:  oidc-provider, pg, playwright-core (tests/node)
set -euo pipefail
cd "$(dirname "$0")/.."

want_apt=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || want_apt+=(postgresql)
command -v psql >/dev/null || want_apt+=(postgresql-client)
command -v pgbench >/dev/null || want_apt+=(postgresql-contrib)
have_pkg libclang-dev || ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || want_apt+=(libclang-dev)
command -v pgbouncer >/dev/null || want_apt+=(pgbouncer)
command -v tmux >/dev/null || want_apt+=(tmux)
[ -x /usr/bin/time ] || want_apt+=(time)
[ -f /usr/share/java/postgresql.jar ] || want_apt+=(libpostgresql-jdbc-java)
command -v java >/dev/null || want_apt+=(default-jre-headless)
command -v openssl >/dev/null || want_apt+=(openssl)
command -v node >/dev/null || want_apt+=(nodejs)
command -v npm >/dev/null || want_apt+=(npm)
command -v pip3 >/dev/null || python3 -m pip --version >/dev/null 2>&1 || want_apt+=(python3-pip)
command -v runuser >/dev/null || want_apt+=(util-linux)
command -v pgrep >/dev/null || want_apt+=(procps)
[ -x /usr/bin/chromium ] || want_apt+=(chromium)

if [ ${#want_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${want_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${want_apt[@]}" >/dev/null
fi
# The Debian postgresql package starts a cluster on 5432; the tests never use
# it (each test binary starts its own), so it is left as the machine has it.

if ! python3 -c 'import psycopg, asyncpg, aiosmtpd' >/dev/null 2>&1; then
  echo "install-deps: pip install psycopg[binary] asyncpg aiosmtpd"
  python3 -m pip install -q --disable-pip-version-check 'psycopg[binary]>=3.1' 'asyncpg>=0.29' 'aiosmtpd>=1.4' 2>&1 | grep -v -i "running pip as the 'root'" || true
fi

if [ ! -d tests/node/node_modules/oidc-provider ] || [ ! -d tests/node/node_modules/pg ] \
   || [ ! -d tests/node/node_modules/playwright-core ]; then
  echo "install-deps: npm ci (tests/node)"
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "install-deps: all dependencies present"
