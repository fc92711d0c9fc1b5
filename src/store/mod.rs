//! The core: a deadpool-postgres pool shared through lanes, the rendered
//! statements, and the save batcher. No napi here.

pub mod abandon;
pub mod batcher;
pub mod coalesced;
pub mod config;
mod lanes;
pub mod limits;
pub mod rows;
pub mod sql;
mod tls;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use futures_util::future::join_all;
use tokio_postgres::types::{ToSql, Type};

use crate::error::StoreError;
use abandon::Abandon;
use batcher::{Answer, Batcher};
use coalesced::{Finds, Loads, SaveRequest, Saves};
use config::{ConnectOptions, PoolSettings};
use lanes::{Lanes, Lease};
use rows::Cell;
use sql::Queries;

/// Locks a mutex of the store's bookkeeping (lanes, crossings). They hold
/// plain values updated in one step, so a panic elsewhere while one was held
/// cannot leave them inconsistent: a poisoned lock is used as it is.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
  mutex
    .lock()
    .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every parameter is sent as text; SQL casts it (see `sql.rs`).
const TEXT_PARAMS: [Type; 8] = [Type::TEXT; 8];

/// Runs one named statement with text parameters and decodes its rows: the
/// pool (`Shared`) in production. The scheduler (`batcher.rs`) and what a
/// batch runs (`coalesced.rs`) only see this, so their unit tests inject a
/// fake runner instead of a database. `abandon`: when every caller of the
/// statement has given up on it.
pub trait Runner: Send + Sync + 'static {
  fn run(
    &self,
    name: &str,
    params: &[Option<String>],
    abandon: &Abandon,
  ) -> impl Future<Output = Result<Vec<Vec<Cell>>, StoreError>> + Send;
}

impl Runner for Shared {
  fn run(
    &self,
    name: &str,
    params: &[Option<String>],
    abandon: &Abandon,
  ) -> impl Future<Output = Result<Vec<Vec<Cell>>, StoreError>> + Send {
    Shared::run(self, name, params, abandon)
  }
}

/// What the pool, the lanes and the batcher share.
pub struct Shared {
  pool: Pool,
  /// For cancel requests, which open a connection of their own.
  tls: tokio_postgres_rustls::MakeRustlsConnect,
  lanes: Lanes,
  queries: Arc<Queries>,
  settings: PoolSettings,
  /// Named, cached statements; off for poolers that cannot keep them.
  prepare: AtomicBool,
  /// Set by `Store::cancel_running` (close() giving up on stragglers): the
  /// statements the server cancels from then on were cancelled by close(),
  /// so their calls get `closed`, not `timeout`.
  cancelled_by_close: AtomicBool,
}

impl Shared {
  /// Runs a named statement with text parameters and decodes its rows. A
  /// statement all of whose callers gave up (`abandon`) before it was sent
  /// is not sent (`Abandoned`); once sent, see `run_abandonable`.
  pub async fn run(
    &self,
    name: &str,
    params: &[Option<String>],
    abandon: &Abandon,
  ) -> Result<Vec<Vec<Cell>>, StoreError> {
    let sql = self.queries.statement(name)?;
    if params.len() > TEXT_PARAMS.len() {
      return Err(StoreError::validation("params", "too many parameters"));
    }
    if abandon.is_abandoned() {
      return Err(StoreError::Abandoned);
    }
    let mut lease = self.lanes.lease(&self.pool).await?;
    let outcome = if !abandon.can_happen() {
      self.run_on(lease.client(), sql, params).await
    } else if abandon.is_abandoned() {
      // Abandoned while it waited for a connection.
      Err(StoreError::Abandoned)
    } else {
      self.run_abandonable(&lease, sql, params, abandon).await
    };
    // The connection is gone (terminated backend, reset socket): it must not
    // be handed to the next call, even before its task has noticed the end.
    if matches!(outcome, Err(StoreError::Connection { .. })) {
      lease.discard();
    }
    self.closed_if_cancelled_by_close(outcome)
  }

  /// Runs the statement; if every caller abandons it meanwhile and it is
  /// alone on its connection, asks the server to cancel it (best effort: it
  /// may finish first). With other calls pipelined on the connection it runs
  /// to its end, as a cancel request stops whatever the backend runs. Either
  /// way its outcome is awaited, so the connection is lent out again only
  /// once the server is done with it.
  async fn run_abandonable(
    &self,
    lease: &Lease<'_>,
    sql: &str,
    params: &[Option<String>],
    abandon: &Abandon,
  ) -> Result<Vec<Vec<Cell>>, StoreError> {
    let statement = self.run_on(lease.client(), sql, params);
    tokio::pin!(statement);
    tokio::select! {
      biased;
      outcome = &mut statement => outcome,
      () = abandon.abandoned() => {
        // Dropped after the statement's end: the connection is free again.
        let Some(_held) = lease.hold_alone() else {
          return statement.await;
        };
        let token = lease.client().cancel_token();
        // The request's own failure (the server unreachable, or slow past
        // the connect timeout) changes nothing: the statement's outcome
        // below tells.
        let cancel = token.cancel_query(self.tls.clone());
        let _ = tokio::time::timeout(self.settings.connect_timeout, cancel).await;
        let outcome = statement.await;
        // The request may still reach the backend after this end.
        lease.retire();
        outcome
      }
    }
  }

  /// A statement the server cancelled (57014) after close() asked it to
  /// is `closed` to its callers, not a `timeout`.
  fn closed_if_cancelled_by_close<T>(
    &self,
    outcome: Result<T, StoreError>,
  ) -> Result<T, StoreError> {
    match outcome {
      Err(StoreError::StatementCanceled(_)) if self.cancelled_by_close.load(Ordering::Acquire) => {
        Err(StoreError::Closed)
      }
      outcome => outcome,
    }
  }

  async fn run_on(
    &self,
    client: &deadpool_postgres::Object,
    sql: &str,
    params: &[Option<String>],
  ) -> Result<Vec<Vec<Cell>>, StoreError> {
    if self.prepare.load(Ordering::Relaxed) {
      let types = &TEXT_PARAMS[..params.len()];
      let mut outcome = self.run_prepared(client, sql, params).await;
      // The server refused the cached statement without running it: its
      // plan is stale after a schema change (0A000, e.g. a column widened to
      // bigint) or the connection no longer knows it (26000). Drop it from
      // the cache, prepare it again and retry once.
      if outcome
        .as_ref()
        .is_err_and(StoreError::is_stale_prepared_statement)
      {
        client.statement_cache.remove(sql, types);
        outcome = self.run_prepared(client, sql, params).await;
      }
      match outcome {
        // Still unknown, or its name taken on the server connection: a
        // transaction-mode pooler without prepared statements. The statement
        // never ran, so running it unnamed cannot run it twice.
        Err(error) if error.is_lost_prepared_statement() => {
          self.prepare.store(false, Ordering::Relaxed);
          client.statement_cache.remove(sql, types);
        }
        outcome => return outcome,
      }
    }
    // One round trip with an unnamed statement: nothing outlives the call, as
    // a transaction-mode pooler requires.
    let typed: Vec<(&(dyn ToSql + Sync), Type)> = params
      .iter()
      .map(|p| (p as &(dyn ToSql + Sync), Type::TEXT))
      .collect();
    let rows = client.query_typed(sql, &typed).await?;
    rows::decode(&rows)
  }

  async fn run_prepared(
    &self,
    client: &deadpool_postgres::Object,
    sql: &str,
    params: &[Option<String>],
  ) -> Result<Vec<Vec<Cell>>, StoreError> {
    let statement = client
      .prepare_typed_cached(sql, &TEXT_PARAMS[..params.len()])
      .await?;
    let values: Vec<&(dyn ToSql + Sync)> =
      params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    let rows = client.query(&statement, &values).await?;
    rows::decode(&rows)
  }
}

pub struct Store {
  shared: Arc<Shared>,
  /// Started on first use, inside the runtime that runs them.
  saves: OnceLock<Batcher<Saves>>,
  loads: OnceLock<Batcher<Loads>>,
  finds: OnceLock<Batcher<Finds>>,
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
  /// Builds the pool. No connection is opened until the first statement
  /// (hence `new`, not `connect`).
  pub fn new(options: &ConnectOptions, queries: Arc<Queries>) -> Result<Self, StoreError> {
    let resolved = options.resolve(|key| std::env::var(key).ok())?;
    let tls = tls::connector(&resolved.tls)?;
    // Connections are checked out rarely (lanes keep them), so each checkout
    // can afford a round trip proving the connection still works.
    let manager_config = ManagerConfig {
      recycling_method: RecyclingMethod::Verified,
    };
    let manager = Manager::from_config(resolved.pg, tls.clone(), manager_config);
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
      .map_err(|error| StoreError::connection(format!("cannot build the pool: {error}")))?;
    let lanes = Lanes::new(resolved.pool.max_size, resolved.pool.connect_timeout);
    let prepare = AtomicBool::new(resolved.pool.prepare);
    let shared = Shared {
      lanes,
      pool,
      tls,
      queries,
      settings: resolved.pool,
      prepare,
      cancelled_by_close: AtomicBool::new(false),
    };
    Ok(Self {
      shared: Arc::new(shared),
      saves: OnceLock::new(),
      loads: OnceLock::new(),
      finds: OnceLock::new(),
    })
  }

  pub fn queries(&self) -> &Queries {
    &self.shared.queries
  }

  /// `Shared::run` on this store's pool: one statement, not coalesced.
  pub async fn run(
    &self,
    name: &str,
    params: &[Option<String>],
  ) -> Result<Vec<Vec<Cell>>, StoreError> {
    self.shared.run(name, params, &Abandon::Never).await
  }

  /// `run`, stopped when its callers give up on it (`abandon`).
  pub async fn run_abandonable(
    &self,
    name: &str,
    params: &[Option<String>],
    abandon: &Abandon,
  ) -> Result<Vec<Vec<Cell>>, StoreError> {
    self.shared.run(name, params, abandon).await
  }

  /// Saves one profile, batched with concurrent saves of other profiles.
  /// The stored revision, or `None` when the expected revision did not match.
  pub async fn save(&self, request: SaveRequest) -> Result<Option<i64>, StoreError> {
    self.save_counted(request, Abandon::Never).await.0
  }

  /// `save`, with how many saves its statement carried; `abandon`: when its
  /// caller gave up on it.
  pub async fn save_counted(&self, request: SaveRequest, abandon: Abandon) -> Answer<Option<i64>> {
    if self.shared.pool.is_closed() {
      return (Err(StoreError::Closed), 1);
    }
    let saves = self
      .saves
      .get_or_init(|| Batcher::start(self.shared.clone()));
    saves.call(request, abandon).await
  }

  /// Loads profiles asked for together: a statement's worth at once, fewer
  /// coalesced with concurrent loads. Outcomes in the order of `profile_ids`.
  pub async fn load_together(
    &self,
    profile_ids: Vec<String>,
  ) -> Vec<Result<Option<String>, StoreError>> {
    outcomes(
      self
        .load_together_counted(profile_ids, Abandon::Never)
        .await,
    )
  }

  /// `load_together`, with how many loads each one's statement carried;
  /// `abandon`: when their caller gave up on them.
  pub async fn load_together_counted(
    &self,
    profile_ids: Vec<String>,
    abandon: Abandon,
  ) -> Vec<Answer<Option<String>>> {
    if self.shared.pool.is_closed() {
      return profile_ids
        .iter()
        .map(|_| (Err(StoreError::Closed), 1))
        .collect();
    }
    self.loads().call_together(profile_ids, abandon).await
  }

  /// The profile ids of each user asked for, in index order; batched like
  /// `load_together`.
  pub async fn find_together(&self, user_ids: Vec<String>) -> Vec<Result<Vec<String>, StoreError>> {
    outcomes(self.find_together_counted(user_ids, Abandon::Never).await)
  }

  /// `find_together`, with how many finds each one's statement carried;
  /// `abandon`: when their caller gave up on them.
  pub async fn find_together_counted(
    &self,
    user_ids: Vec<String>,
    abandon: Abandon,
  ) -> Vec<Answer<Vec<String>>> {
    if self.shared.pool.is_closed() {
      return user_ids
        .iter()
        .map(|_| (Err(StoreError::Closed), 1))
        .collect();
    }
    self
      .finds
      .get_or_init(|| Batcher::start(self.shared.clone()))
      .call_together(user_ids, abandon)
      .await
  }

  fn loads(&self) -> &Batcher<Loads> {
    self
      .loads
      .get_or_init(|| Batcher::start(self.shared.clone()))
  }

  /// Runs a script (several statements, no parameters): the schema DDL or
  /// the upgrade. Not a batch of calls (see `batcher.rs`).
  pub async fn execute_script(&self, sql: &str) -> Result<(), StoreError> {
    let mut lease = self.shared.lanes.lease(&self.shared.pool).await?;
    let outcome = lease
      .client()
      .batch_execute(sql)
      .await
      .map_err(StoreError::from);
    if matches!(outcome, Err(StoreError::Connection { .. })) {
      lease.discard();
    }
    self.shared.closed_if_cancelled_by_close(outcome)
  }

  /// Stops handing out connections and lets go of idle ones; calls in flight
  /// finish on theirs, which are closed when the calls return.
  pub fn close(&self) {
    self.shared.pool.close();
    self.shared.lanes.release_all();
  }

  /// Asks the server to cancel what runs on busy connections; best effort
  /// (a statement that already finished is not affected). For close() only:
  /// from now on a cancelled statement's calls get `closed`.
  pub async fn cancel_running(&self) {
    self
      .shared
      .cancelled_by_close
      .store(true, Ordering::Release);
    let cancels = self
      .shared
      .lanes
      .busy_connections()
      .into_iter()
      .map(|client| {
        let token = client.cancel_token();
        let tls = self.shared.tls.clone();
        async move { token.cancel_query(tls).await }
      });
    join_all(cancels).await;
  }

  pub fn is_closed(&self) -> bool {
    self.shared.pool.is_closed()
  }

  pub fn status(&self) -> PoolStatus {
    let status = self.shared.pool.status();
    PoolStatus {
      max_size: status.max_size,
      size: status.size,
      // Idle lanes plus connections the lanes have let go of (not yet closed).
      available: self.shared.lanes.idle_count() + status.available,
      waiting: self.shared.lanes.waiting_count(),
    }
  }

  /// Closes connections idle for longer than `idleTimeoutMillis`.
  pub fn reap_idle(&self) {
    if let Some(idle) = self.shared.settings.idle_timeout {
      self.shared.lanes.release_idle(idle);
      self
        .shared
        .pool
        .retain(|_, metrics| metrics.last_used() < idle);
    }
  }

  /// How often `reap_idle` should run, if at all.
  pub fn reap_interval(&self) -> Option<Duration> {
    self
      .shared
      .settings
      .idle_timeout
      .map(|idle| (idle / 2).max(Duration::from_millis(100)))
  }
}

/// The outcomes of answers, without the statement sizes.
fn outcomes<T>(answers: Vec<Answer<T>>) -> Vec<Result<T, StoreError>> {
  answers.into_iter().map(|(outcome, _)| outcome).collect()
}
