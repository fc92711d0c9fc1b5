//! The JS side of the boundary: option and result shapes, and cell conversion.
//! Field docs flow into the generated `binding.d.ts`.

use std::collections::HashMap;

use napi::bindgen_prelude::{Either, Null, Object, ToNapiValue};
use napi::{sys, Env};
use napi_derive::napi;

use crate::error::StoreError;
use crate::store::config::{ConnectOptions, SslOption};
use crate::store::rows::Cell;
use crate::store::sql::{LegacyTables, Queries};
use crate::store::PoolStatus;

/// node-postgres' `ssl: { ... }` form.
#[napi(object, object_to_js = false)]
pub struct SslOptions {
  /// Verify the server certificate and host name. Default `true`.
  pub reject_unauthorized: Option<bool>,
  /// PEM text of the CA that signed the server certificate. Default: public roots.
  pub ca: Option<String>,
}

/// Options of the native pool (names follow node-postgres).
///
/// The one source of truth for the native options: `binding.d.ts` is
/// generated from it, and `__test__/options.test.mjs` checks that
/// `index.d.ts` (`NativeConnectionOptions` and `ArtifactOptions`, the same
/// docs word for word), `index.js` (`NATIVE_OPTIONS`) and the README's
/// Configuration table name the same options.
#[napi(object, object_to_js = false)]
pub struct NativeOptions {
  /// URL or `key=value` string; `sslmode=disable|prefer|require|verify-ca|verify-full`, `sslrootcert`,
  /// `application_name`, `connect_timeout`, `options` and `target_session_attrs` work. Each explicit
  /// option below replaces only its own parameter.
  pub connection_string: Option<String>,
  /// Default: the connection string's, else `PGHOST`, else `localhost`.
  pub host: Option<String>,
  /// Default: the connection string's, else `PGPORT`, else 5432.
  pub port: Option<u32>,
  /// Default: the connection string's, else `PGUSER`, else the OS account of the process (as libpq; not
  /// `$USER`).
  pub user: Option<String>,
  /// Default: the connection string's, else `PGPASSWORD`.
  pub password: Option<String>,
  /// Default: the connection string's, else `PGDATABASE`, else the user name.
  pub database: Option<String>,
  /// `true` = verify-full; `{ rejectUnauthorized: false }` = require. Default: the connection string's
  /// `sslmode`, else `PGSSLMODE`, else `prefer`.
  pub ssl: Option<Either<bool, SslOptions>>,
  /// Pool size. Default 10.
  pub max: Option<u32>,
  /// Longest wait for a connection (acquire or connect). Default 30000.
  pub connection_timeout_millis: Option<u32>,
  /// Close connections idle this long; 0 = never. Default 10000.
  pub idle_timeout_millis: Option<u32>,
  /// Server-side `statement_timeout`, in ms, sent as a startup option after the connection string's
  /// `options` (or `PGOPTIONS`), which stay in force. A statement it cancels rejects with `timeout`,
  /// `sqlState: '57014'`. Default: the server's.
  pub statement_timeout_millis: Option<u32>,
  /// Shown in `pg_stat_activity`. Default: the connection string's `application_name`, else
  /// `PGAPPNAME`, else `pson5-postgres-store`.
  pub application_name: Option<String>,
  /// Named prepared statements, cached per connection. Default true; set false behind a
  /// transaction-mode pooler without prepared-statement support (pgbouncer < 1.21).
  pub prepare: Option<bool>,
  /// Default `public`.
  pub schema: Option<String>,
  /// Default `pson_`. Must match `[A-Za-z_][A-Za-z0-9_]*`.
  pub table_prefix: Option<String>,
  /// The 0.2.2 tables `upgradeSql` and `upgradeFrom022()` copy from, in `schema` (0.2.2's options of
  /// the same names). Any name up to 63 bytes, quoted. Defaults `pson_profiles_current`,
  /// `pson_profile_revisions`, `pson_user_profile_index`. A non-string, empty or longer name throws
  /// `validation_error` naming the option.
  pub current_profiles_table: Option<String>,
  /// 0.2.2's revisions table, read by the upgrade. Default `pson_profile_revisions`.
  pub profile_revisions_table: Option<String>,
  /// 0.2.2's user index table, read by the upgrade. Default `pson_user_profile_index`.
  pub user_index_table: Option<String>,
}

/// The 0.2.2 table names `upgradeSql` reads (0.2.2's options of the same names).
#[napi(object, object_to_js = false)]
pub struct LegacyTableNames {
  /// Default `pson_profiles_current`.
  pub current_profiles_table: Option<String>,
  /// Default `pson_profile_revisions`.
  pub profile_revisions_table: Option<String>,
  /// Default `pson_user_profile_index`.
  pub user_index_table: Option<String>,
}

impl LegacyTableNames {
  pub fn tables(&self) -> LegacyTables {
    legacy_tables(
      &self.current_profiles_table,
      &self.profile_revisions_table,
      &self.user_index_table,
    )
  }
}

fn legacy_tables(
  current_profiles: &Option<String>,
  profile_revisions: &Option<String>,
  user_index: &Option<String>,
) -> LegacyTables {
  let defaults = LegacyTables::default();
  LegacyTables {
    current_profiles: current_profiles
      .clone()
      .unwrap_or(defaults.current_profiles),
    profile_revisions: profile_revisions
      .clone()
      .unwrap_or(defaults.profile_revisions),
    user_index: user_index.clone().unwrap_or(defaults.user_index),
  }
}

impl NativeOptions {
  /// The statements for this schema, prefix and 0.2.2 table names.
  pub fn queries(&self) -> Result<Queries, StoreError> {
    Queries::with_legacy_tables(
      self.schema.as_deref().unwrap_or("public"),
      self.table_prefix.as_deref().unwrap_or("pson_"),
      &legacy_tables(
        &self.current_profiles_table,
        &self.profile_revisions_table,
        &self.user_index_table,
      ),
    )
  }

  /// The connection and pool options. Destructured field by field: an
  /// option added to `NativeOptions` fails to compile here until it is
  /// either passed on or listed as an artifact option.
  pub fn connect_options(&self) -> ConnectOptions {
    let Self {
      connection_string,
      host,
      port,
      user,
      password,
      database,
      ssl,
      max,
      connection_timeout_millis,
      idle_timeout_millis,
      statement_timeout_millis,
      application_name,
      prepare,
      // Artifact options: see `queries`.
      schema: _,
      table_prefix: _,
      current_profiles_table: _,
      profile_revisions_table: _,
      user_index_table: _,
    } = self;
    ConnectOptions {
      connection_string: connection_string.clone(),
      host: host.clone(),
      port: port.map(|p| p.min(u16::MAX.into()) as u16),
      user: user.clone(),
      password: password.clone(),
      database: database.clone(),
      ssl: match ssl {
        None => SslOption::Unset,
        Some(Either::A(enabled)) => SslOption::Enabled(*enabled),
        Some(Either::B(custom)) => SslOption::Custom {
          reject_unauthorized: custom.reject_unauthorized,
          ca: custom.ca.clone(),
        },
      },
      max: *max,
      connection_timeout_millis: *connection_timeout_millis,
      idle_timeout_millis: *idle_timeout_millis,
      statement_timeout_millis: *statement_timeout_millis,
      application_name: application_name.clone(),
      prepare: *prepare,
    }
  }
}

#[napi(object)]
pub struct ArtifactTables {
  /// One row per profile, JSONB document.
  pub profiles: String,
  /// Append-only revision log with a snapshot per revision.
  pub profile_audit: String,
  /// One row per user/profile with tenant and active domains.
  pub domain_index: String,
}

#[napi(object)]
pub struct Artifacts {
  /// Idempotent DDL for the three tables and their indexes.
  pub schema_sql: String,
  /// Idempotent copy of a 0.2.2 deployment into the new tables.
  pub upgrade_sql: String,
  pub tables: ArtifactTables,
  /// The SQL text of every statement the repository runs, by name.
  pub queries: HashMap<String, String>,
}

impl From<&Queries> for Artifacts {
  fn from(queries: &Queries) -> Self {
    Self {
      schema_sql: queries.schema_sql.clone(),
      upgrade_sql: queries.upgrade_sql.clone(),
      tables: ArtifactTables {
        profiles: queries.tables.profiles.clone(),
        profile_audit: queries.tables.profile_audit.clone(),
        domain_index: queries.tables.domain_index.clone(),
      },
      queries: queries
        .statements()
        .map(|(name, sql)| (name.to_owned(), sql.to_owned()))
        .collect(),
    }
  }
}

#[napi(object)]
pub struct PoolStatusJs {
  pub max_size: u32,
  pub size: u32,
  pub available: u32,
  pub waiting: u32,
}

impl From<PoolStatus> for PoolStatusJs {
  fn from(status: PoolStatus) -> Self {
    let n = |v: usize| v.min(u32::MAX as usize) as u32;
    Self {
      max_size: n(status.max_size),
      size: n(status.size),
      available: n(status.available),
      waiting: n(status.waiting),
    }
  }
}

/// A decoded cell as a JS primitive.
pub struct JsCell(pub Cell);

impl ToNapiValue for JsCell {
  unsafe fn to_napi_value(env: sys::napi_env, cell: Self) -> napi::Result<sys::napi_value> {
    match cell.0 {
      Cell::Null => Null::to_napi_value(env, Null),
      Cell::Text(text) => String::to_napi_value(env, text),
      // Our integer columns (revisions, counts) fit in a double exactly.
      Cell::Int(int) => f64::to_napi_value(env, int as f64),
      Cell::Bool(flag) => bool::to_napi_value(env, flag),
    }
  }
}

/// One statement call of a gathered batch.
#[napi(object, object_to_js = false)]
pub struct QueryCall {
  pub name: String,
  pub params: Vec<Option<String>>,
}

/// One save of a gathered batch; `document` is validated JSON text.
#[napi(object, object_to_js = false)]
pub struct SaveCall {
  pub profile_id: String,
  pub document: String,
  pub expected_revision: Option<i64>,
  pub context: Option<String>,
}

/// The result of one call of a gathered batch: `{ value }` or `{ error }`,
/// where `error` is the same JSON envelope a rejection carries. Calls of one
/// batch succeed and fail independently.
pub struct Outcome<T>(pub Result<T, StoreError>);

impl<T: ToNapiValue> ToNapiValue for Outcome<T> {
  unsafe fn to_napi_value(raw_env: sys::napi_env, outcome: Self) -> napi::Result<sys::napi_value> {
    CountedOutcome::to_napi_value(raw_env, CountedOutcome(outcome.0, None))
  }
}

/// An outcome as `{ value }` or `{ error }`, plus `calls` (how many calls its
/// statement carried) when it is known and more than one.
pub struct CountedOutcome<T>(pub Result<T, StoreError>, pub Option<usize>);

impl<T: ToNapiValue> ToNapiValue for CountedOutcome<T> {
  unsafe fn to_napi_value(raw_env: sys::napi_env, outcome: Self) -> napi::Result<sys::napi_value> {
    let env = Env::from_raw(raw_env);
    let mut object = Object::new(&env)?;
    match outcome.0 {
      Ok(value) => object.set("value", value)?,
      Err(error) => object.set("error", napi::Error::from(error).reason)?,
    }
    if let Some(calls) = outcome.1.filter(|&calls| calls > 1) {
      object.set("calls", calls.min(u32::MAX as usize) as u32)?;
    }
    Object::to_napi_value(raw_env, object)
  }
}
