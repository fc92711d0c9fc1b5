//! Native core of `@pson5/postgres-store`.
//!
//! How a call runs (the README's "How a call runs" says the same for users):
//!
//! ```text
//! JS method (lib/repository.js: closed check, validation, signal)
//!   -> driver (lib/drivers.js): the calls of one tick, one N-API crossing
//!      per statement's worth (LOADS/FINDS/SAVES_PER_CROSSING, CROSSING_BYTES)
//!   -> repository.rs  NativeRepository::{load_many, load_many_json, find_many,
//!                     save_many, query_many}; `abandon` when every call of a
//!                     crossing aborted (store/abandon.rs)
//!   -> store/mod.rs   Store: one Batcher per kind (saves, loads, finds)
//!   -> store/batcher.rs  call_together: a statement's worth of loads/finds runs
//!                     at once under a permit; fewer, and every save, wait in
//!                     the kind's queue, whose dispatch task makes the waiting
//!                     calls one statement as soon as a permit is free (2 save
//!                     statements, 4 load and 4 find statements at once);
//!                     STALLED_AFTER
//!   -> store/coalesced.rs  what a batch of saves/loads/finds runs (one statement)
//!   -> store/mod.rs   Shared::run: a named statement on a lane, prepared and
//!                     cached; a stale plan is prepared again and retried once
//!   -> store/lanes.rs a pooled connection shared by pipelined calls: idle one
//!                     first, else the first to go idle or to open (new ones
//!                     open in the background), else the least busy; STALLED_AFTER
//! ```
//!
//! Every limit named above is in `store/limits.rs`, with the measurement
//! behind it and the bench command that re-derives it.
//!
//! - `store/`: no napi. `sql.rs` holds ALL SQL (schema, upgrade, statements)
//!   and `Statement`, the one list of statements (name, columns, effect),
//!   `limits.rs` every limit of the call path, `abandon.rs` when every
//!   caller of a statement gave up on it (cancelled on the server),
//!   `config.rs` turns options/`DATABASE_URL`/`PG*` into a driver config,
//!   `tls.rs` maps `sslmode` to rustls, `rows.rs` decodes result rows, and
//!   `mod.rs` owns the deadpool-postgres pool.
//! - `error.rs`: `StoreError`, its stable `code`, the one conversion to JS.
//! - `js_types.rs` and `repository.rs`: the napi boundary only.
//!   `js_types.rs`' `NativeOptions` is the one list of connection options.
//! - `history.rs`: revision history (diffs, blame) over the audit rows.
//! - `telemetry.rs`: where a pool connects, for OpenTelemetry attributes.
//!
//! Validation of documents and the four call forms live in `index.js` and
//! `lib/`, which run before anything crosses into Rust (see the README).
#![deny(clippy::all)]

pub mod error;
pub mod history;
pub mod js_types;
pub mod repository;
pub mod store;
pub mod telemetry;

use std::collections::HashMap;

use napi_derive::napi;

use js_types::{Artifacts, LegacyTableNames};
use store::sql::{Queries, Statement};

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

/// What each statement does to the data, by statement name: `read`,
/// `primaryRead`, `keepsCurrent` or `write` (`Statement::effect`), for
/// lib/replicas.js.
#[napi]
pub fn statement_effects() -> HashMap<String, String> {
  Statement::ALL
    .iter()
    .map(|statement| {
      (
        statement.name().to_owned(),
        statement.effect().name().to_owned(),
      )
    })
    .collect()
}
