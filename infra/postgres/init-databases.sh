#!/bin/sh
# Run once by the postgres image on an empty volume: one database and one role per server, and a
# role for the registry's promotion lock that may connect to the mlflow database and do nothing
# else (advisory locks need no table privilege). Passwords come from infra/env/postgres.env.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v mlflow_pw="$MLFLOW_DB_PASSWORD" -v prefect_pw="$PREFECT_DB_PASSWORD" \
  -v lock_pw="$SKYSENSE_LOCK_DB_PASSWORD" <<'SQL'
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_pw';
CREATE ROLE prefect LOGIN PASSWORD :'prefect_pw';
CREATE ROLE skysense_lock LOGIN PASSWORD :'lock_pw';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
CREATE DATABASE prefect OWNER prefect;
REVOKE ALL ON DATABASE mlflow, mlflow_auth, prefect FROM PUBLIC;
GRANT CONNECT ON DATABASE mlflow TO skysense_lock;
SQL
