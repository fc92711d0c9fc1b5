//! Native core of `@pson5/postgres-store`.
//!
//! - `store/`: no napi. `sql.rs` holds ALL SQL (schema, upgrade, statements),
//!   `config.rs` turns options/`DATABASE_URL`/`PG*` into a driver config,
//!   `tls.rs` maps `sslmode` to rustls, `rows.rs` decodes result rows, and
//!   `mod.rs` owns the deadpool-postgres pool.
//! - `error.rs`: `StoreError`, its stable `code`, the one conversion to JS.
//! - `js_types.rs` and `repository.rs`: the napi boundary only.
//! - `telemetry.rs`: where a pool connects, for OpenTelemetry attributes.
//!
//! Validation of documents and the four call forms live in `index.js`, which
//! runs before anything crosses into Rust (see the README).
#![deny(clippy::all)]

pub mod error;
pub mod history;
pub mod js_types;
pub mod repository;
pub mod store;
pub mod telemetry;

use napi_derive::napi;

use js_types::{Artifacts, LegacyTableNames};
use store::sql::Queries;

/// The largest revision a profile can have (PostgreSQL `integer`); a save
/// of a profile at this revision rejects with `validation_error`.
#[napi]
pub const MAX_REVISION: u32 = store::sql::MAX_REVISION as u32;

/// Renders the schema, upgrade script and statements for a schema/prefix;
/// `legacy` names the 0.2.2 tables the upgrade script reads.
#[napi]
pub fn artifacts(
  schema: Option<String>,
  table_prefix: Option<String>,
  legacy: Option<LegacyTableNames>,
) -> napi::Result<Artifacts> {
  let queries = Queries::with_legacy_tables(
    schema.as_deref().unwrap_or("public"),
    table_prefix.as_deref().unwrap_or("pson_"),
    &legacy.map(|names| names.tables()).unwrap_or_default(),
  )?;
  Ok(Artifacts::from(&queries))
}
