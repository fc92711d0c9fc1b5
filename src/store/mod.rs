//! The core: a deadpool-postgres pool and the rendered statements. No napi here.

pub mod config;
pub mod rows;
pub mod sql;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::types::Type;

use crate::error::StoreError;
use config::{ConnectOptions, PoolSettings};
use rows::Cell;
use sql::Queries;

/// Every parameter is sent as text; SQL casts it (see `sql.rs`).
const TEXT_PARAMS: [Type; 8] = [
  Type::TEXT,
  Type::TEXT,
  Type::TEXT,
  Type::TEXT,
  Type::TEXT,
  Type::TEXT,
  Type::TEXT,
  Type::TEXT,
];

pub struct Store {
  pool: Pool,
  queries: Arc<Queries>,
  settings: PoolSettings,
}

/// A snapshot of the pool for observability.
#[derive(Debug, Clone, Copy)]
pub struct PoolStatus {
  pub max_size: usize,
  pub size: usize,
  pub available: usize,
  pub waiting: usize,
}

impl Store {
  /// Builds the pool. No connection is opened until the first query.
  pub fn connect(options: &ConnectOptions, queries: Arc<Queries>) -> Result<Self, StoreError> {
    let resolved = options.resolve(|key| std::env::var(key).ok())?;
    let tls = tls::connector(&resolved.tls)?;
    // `Fast` trusts `Client::is_closed()`: a backend that died is dropped on
    // return instead of costing every checkout a round trip.
    let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = Manager::from_config(resolved.pg, tls, manager_config);
    let timeouts = Timeouts {
      wait: Some(resolved.pool.connect_timeout),
      create: Some(resolved.pool.connect_timeout),
      recycle: Some(resolved.pool.connect_timeout),
    };
    let pool = Pool::builder(manager)
      .max_size(resolved.pool.max_size)
      .timeouts(timeouts)
      .runtime(Runtime::Tokio1)
      .build()
      .map_err(|error| StoreError::Connection(format!("cannot build the pool: {error}")))?;
    Ok(Self { pool, queries, settings: resolved.pool })
  }

  pub fn queries(&self) -> &Queries {
    &self.queries
  }

  /// Runs a named statement with text parameters and decodes its rows.
  pub async fn run(&self, name: &str, params: &[Option<String>]) -> Result<Vec<Vec<Cell>>, StoreError> {
    let sql = self.queries.statement(name)?;
    if params.len() > TEXT_PARAMS.len() {
      return Err(StoreError::validation("params", "too many parameters"));
    }
    let client = self.pool.get().await?;
    let statement = client.prepare_typed_cached(sql, &TEXT_PARAMS[..params.len()]).await?;
    let values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
      params.iter().map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
    let rows = client.query(&statement, &values).await?;
    rows::decode(&rows)
  }

  /// Runs `sql` (several statements allowed, no parameters), e.g. the DDL.
  pub async fn batch(&self, sql: &str) -> Result<(), StoreError> {
    let client = self.pool.get().await?;
    client.batch_execute(sql).await?;
    Ok(())
  }

  /// Stops handing out connections and drops the idle ones; connections in
  /// use are dropped when their call finishes.
  pub fn close(&self) {
    self.pool.close();
  }

  pub fn is_closed(&self) -> bool {
    self.pool.is_closed()
  }

  pub fn status(&self) -> PoolStatus {
    let status = self.pool.status();
    PoolStatus {
      max_size: status.max_size,
      size: status.size,
      available: status.available,
      waiting: status.waiting,
    }
  }

  /// Drops connections idle for longer than `idleTimeoutMillis`.
  pub fn reap_idle(&self) {
    if let Some(idle) = self.settings.idle_timeout {
      self.pool.retain(|_, metrics| metrics.last_used() < idle);
    }
  }

  /// How often `reap_idle` should run, if at all.
  pub fn reap_interval(&self) -> Option<Duration> {
    self.settings.idle_timeout.map(|idle| (idle / 2).max(Duration::from_millis(100)))
  }
}
