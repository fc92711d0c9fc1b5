//! Pooled connections shared by concurrent statements.
//!
//! tokio-postgres pipelines the queries that are in flight on one client, so
//! 32 concurrent calls do not need 32 connections, nor need to queue for 10:
//! each call picks a "lane" (one pooled connection) and sends at once. Every
//! statement of this package is a single autocommit statement, so sharing a
//! connection never mixes transaction state.
//!
//! A lane is chosen by load: an idle open lane first, then an empty lane (a new
//! connection), then the open lane with the fewest calls in flight. A lane
//! whose calls have made no progress for `LANE_STALLED_AFTER` (a row lock, a slow
//! statement) is passed over, so one stuck call does not hold up the rest; when
//! every lane is stalled a call waits for progress up to the pool's acquire
//! timeout (`connectionTimeoutMillis`), then fails with `timeout`, as a
//! saturated node-postgres pool does.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};
use tokio::sync::Notify;

use crate::error::StoreError;

/// A lane with calls in flight and no completion for this long is stalled.
const LANE_STALLED_AFTER: Duration = Duration::from_millis(250);

pub struct Lanes {
  lanes: Vec<Lane>,
  /// Set by `release_all`: connections go back as their last call finishes.
  closing: AtomicBool,
  /// Signalled whenever a call finishes, for calls waiting on stalled lanes.
  progress: Notify,
  acquire_timeout: Duration,
}

struct Lane {
  connection: Mutex<Option<Arc<Object>>>,
  /// Serialises opening a connection for this lane.
  opening: tokio::sync::Mutex<()>,
  in_flight: AtomicUsize,
  /// Last time a call on this lane finished (or the lane was first used).
  last_used: Mutex<Instant>,
}

impl Lane {
  fn stalled(&self) -> bool {
    self.in_flight.load(Ordering::Acquire) > 0
      && lock(&self.last_used).elapsed() >= LANE_STALLED_AFTER
  }
}

/// A connection lent to one call; counts the call while it lives.
pub struct Lease<'a> {
  lane: &'a Lane,
  progress: &'a Notify,
  closing: &'a AtomicBool,
  /// Set by `discard`: the connection is known to be dead.
  dead: bool,
  pub client: Arc<Object>,
}

impl Lease<'_> {
  /// The call learnt that the connection is gone: the lane lets go of it
  /// now, so no later call is handed it (its task may not have seen the
  /// end of the socket yet, so `is_closed` can still say false).
  pub fn discard(&mut self) {
    self.dead = true;
  }
}

impl Drop for Lease<'_> {
  fn drop(&mut self) {
    let others = self.lane.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
    *lock(&self.lane.last_used) = Instant::now();
    self.progress.notify_waiters();
    // A connection that died is let go, so the pool replaces it; after close,
    // the last call on a connection lets it go.
    if self.dead || self.client.is_closed() || (others == 0 && self.closing.load(Ordering::Acquire))
    {
      let mut connection = lock(&self.lane.connection);
      if connection
        .as_ref()
        .is_some_and(|c| Arc::ptr_eq(c, &self.client))
      {
        *connection = None;
      }
    }
  }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
  // A panic while holding these short locks cannot leave them inconsistent.
  mutex
    .lock()
    .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Lanes {
  pub fn new(count: usize, acquire_timeout: Duration) -> Self {
    let lanes = (0..count.max(1))
      .map(|_| Lane {
        connection: Mutex::new(None),
        opening: tokio::sync::Mutex::new(()),
        in_flight: AtomicUsize::new(0),
        last_used: Mutex::new(Instant::now()),
      })
      .collect();
    Self {
      lanes,
      closing: AtomicBool::new(false),
      progress: Notify::new(),
      acquire_timeout,
    }
  }

  pub async fn lease(&self, pool: &Pool) -> Result<Lease<'_>, StoreError> {
    if pool.is_closed() {
      return Err(StoreError::Closed);
    }
    let lane = self.pick_or_wait().await?;
    lane.in_flight.fetch_add(1, Ordering::AcqRel);
    // From here the count is undone by the Lease, or by this guard on error.
    let undo = scopeguard(|| {
      lane.in_flight.fetch_sub(1, Ordering::AcqRel);
    });
    let client = match live(lane) {
      Some(client) => client,
      None => {
        let _opening = lane.opening.lock().await;
        match live(lane) {
          Some(client) => client,
          None => {
            let client = Arc::new(pool.get().await?);
            *lock(&lane.connection) = Some(client.clone());
            client
          }
        }
      }
    };
    undo.disarm();
    Ok(Lease {
      lane,
      progress: &self.progress,
      closing: &self.closing,
      dead: false,
      client,
    })
  }

  async fn pick_or_wait(&self) -> Result<&Lane, StoreError> {
    let deadline = tokio::time::Instant::now() + self.acquire_timeout;
    loop {
      // Register before looking, so a completion in between is not missed.
      let progressed = self.progress.notified();
      if let Some(lane) = self.pick() {
        return Ok(lane);
      }
      if tokio::time::timeout_at(deadline, progressed).await.is_err() {
        return Err(StoreError::Timeout(format!(
          "no connection was free within {} ms: all {} are busy with statements that are not finishing",
          self.acquire_timeout.as_millis(),
          self.lanes.len()
        )));
      }
    }
  }

  fn pick(&self) -> Option<&Lane> {
    let open = |lane: &&Lane| live(lane).is_some();
    if let Some(idle) = self
      .lanes
      .iter()
      .filter(open)
      .find(|s| s.in_flight.load(Ordering::Acquire) == 0)
    {
      return Some(idle);
    }
    if let Some(empty) = self.lanes.iter().find(|s| !open(s)) {
      return Some(empty);
    }
    self
      .lanes
      .iter()
      .filter(|s| !s.stalled())
      .min_by_key(|s| s.in_flight.load(Ordering::Acquire))
  }

  /// Lets go of connections idle for longer than `idle` (the pool closes them).
  pub fn release_idle(&self, idle: Duration) {
    for lane in &self.lanes {
      if lane.in_flight.load(Ordering::Acquire) == 0 && lock(&lane.last_used).elapsed() >= idle {
        lock(&lane.connection).take();
      }
    }
  }

  /// Open connections with no call in flight. The lanes keep their pooled
  /// objects checked out, so the pool itself counts none of them as available.
  pub fn idle_count(&self) -> usize {
    self
      .lanes
      .iter()
      .filter(|lane| lane.in_flight.load(Ordering::Acquire) == 0 && live(lane).is_some())
      .count()
  }

  /// The connections that have calls in flight.
  pub fn busy_connections(&self) -> Vec<Arc<Object>> {
    self
      .lanes
      .iter()
      .filter(|lane| lane.in_flight.load(Ordering::Acquire) > 0)
      .filter_map(|lane| lock(&lane.connection).clone())
      .collect()
  }

  /// Lets go of idle connections now and of busy ones when their calls
  /// finish (until then `busy_connections` can still cancel them).
  pub fn release_all(&self) {
    self.closing.store(true, Ordering::Release);
    for lane in &self.lanes {
      if lane.in_flight.load(Ordering::Acquire) == 0 {
        lock(&lane.connection).take();
      }
    }
  }
}

/// The lane's connection if it still works. A dead one is let go here, so
/// its pool permit comes back before a replacement is asked for (else a pool
/// whose connections all died would wait on its own dead objects).
fn live(lane: &Lane) -> Option<Arc<Object>> {
  let mut connection = lock(&lane.connection);
  match connection.as_ref() {
    Some(client) if client.is_closed() => {
      let dead = connection.take();
      drop(connection);
      drop(dead);
      None
    }
    other => other.cloned(),
  }
}

/// Runs `undo` on drop unless disarmed.
struct ScopeGuard<F: FnMut()> {
  undo: Option<F>,
}

fn scopeguard<F: FnMut()>(undo: F) -> ScopeGuard<F> {
  ScopeGuard { undo: Some(undo) }
}

impl<F: FnMut()> ScopeGuard<F> {
  fn disarm(mut self) {
    self.undo = None;
  }
}

impl<F: FnMut()> Drop for ScopeGuard<F> {
  fn drop(&mut self) {
    if let Some(mut undo) = self.undo.take() {
      undo();
    }
  }
}
