//! Pooled connections shared by concurrent statements.
//!
//! tokio-postgres pipelines the queries that are in flight on one client, so
//! 32 concurrent calls do not need 32 connections, nor need to queue for 10:
//! each call picks a "lane" (one pooled connection) and sends at once. Every
//! statement of this package is a single autocommit statement, so sharing a
//! connection never mixes transaction state.
//!
//! A lane is chosen by load: an idle open lane first, then an empty slot (a new
//! connection), then the open lane with the fewest calls in flight. A lane
//! whose calls have made no progress for `STALLED_AFTER` (a row lock, a slow
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
const STALLED_AFTER: Duration = Duration::from_millis(250);

pub struct Lanes {
  slots: Vec<Slot>,
  /// Set by `release_all`: connections go back as their last call finishes.
  closing: AtomicBool,
  /// Signalled whenever a call finishes, for calls waiting on stalled lanes.
  progress: Notify,
  acquire_timeout: Duration,
}

struct Slot {
  connection: Mutex<Option<Arc<Object>>>,
  /// Serialises opening a connection for this slot.
  opening: tokio::sync::Mutex<()>,
  in_flight: AtomicUsize,
  /// Last time a call on this lane finished (or the lane was first used).
  last_used: Mutex<Instant>,
}

impl Slot {
  fn stalled(&self) -> bool {
    self.in_flight.load(Ordering::Acquire) > 0 && lock(&self.last_used).elapsed() >= STALLED_AFTER
  }
}

/// A connection lent to one call; counts the call while it lives.
pub struct Lease<'a> {
  slot: &'a Slot,
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
    let others = self.slot.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
    *lock(&self.slot.last_used) = Instant::now();
    self.progress.notify_waiters();
    // A connection that died is let go, so the pool replaces it; after close,
    // the last call on a connection lets it go.
    if self.dead || self.client.is_closed() || (others == 0 && self.closing.load(Ordering::Acquire))
    {
      let mut connection = lock(&self.slot.connection);
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
    let slots = (0..count.max(1))
      .map(|_| Slot {
        connection: Mutex::new(None),
        opening: tokio::sync::Mutex::new(()),
        in_flight: AtomicUsize::new(0),
        last_used: Mutex::new(Instant::now()),
      })
      .collect();
    Self {
      slots,
      closing: AtomicBool::new(false),
      progress: Notify::new(),
      acquire_timeout,
    }
  }

  pub async fn lease(&self, pool: &Pool) -> Result<Lease<'_>, StoreError> {
    if pool.is_closed() {
      return Err(StoreError::Closed);
    }
    let slot = self.pick_or_wait().await?;
    slot.in_flight.fetch_add(1, Ordering::AcqRel);
    // From here the count is undone by the Lease, or by this guard on error.
    let undo = scopeguard(|| {
      slot.in_flight.fetch_sub(1, Ordering::AcqRel);
    });
    let client = match live(slot) {
      Some(client) => client,
      None => {
        let _opening = slot.opening.lock().await;
        match live(slot) {
          Some(client) => client,
          None => {
            let client = Arc::new(pool.get().await?);
            *lock(&slot.connection) = Some(client.clone());
            client
          }
        }
      }
    };
    undo.disarm();
    Ok(Lease {
      slot,
      progress: &self.progress,
      closing: &self.closing,
      dead: false,
      client,
    })
  }

  async fn pick_or_wait(&self) -> Result<&Slot, StoreError> {
    let deadline = tokio::time::Instant::now() + self.acquire_timeout;
    loop {
      // Register before looking, so a completion in between is not missed.
      let progressed = self.progress.notified();
      if let Some(slot) = self.pick() {
        return Ok(slot);
      }
      if tokio::time::timeout_at(deadline, progressed).await.is_err() {
        return Err(StoreError::Timeout(format!(
          "no connection was free within {} ms: all {} are busy with statements that are not finishing",
          self.acquire_timeout.as_millis(),
          self.slots.len()
        )));
      }
    }
  }

  fn pick(&self) -> Option<&Slot> {
    let open = |slot: &&Slot| live(slot).is_some();
    if let Some(idle) = self
      .slots
      .iter()
      .filter(open)
      .find(|s| s.in_flight.load(Ordering::Acquire) == 0)
    {
      return Some(idle);
    }
    if let Some(empty) = self.slots.iter().find(|s| !open(s)) {
      return Some(empty);
    }
    self
      .slots
      .iter()
      .filter(|s| !s.stalled())
      .min_by_key(|s| s.in_flight.load(Ordering::Acquire))
  }

  /// Lets go of connections idle for longer than `idle` (the pool closes them).
  pub fn release_idle(&self, idle: Duration) {
    for slot in &self.slots {
      if slot.in_flight.load(Ordering::Acquire) == 0 && lock(&slot.last_used).elapsed() >= idle {
        lock(&slot.connection).take();
      }
    }
  }

  /// Open connections with no call in flight. The lanes keep their pooled
  /// objects checked out, so the pool itself counts none of them as available.
  pub fn idle_count(&self) -> usize {
    self
      .slots
      .iter()
      .filter(|slot| slot.in_flight.load(Ordering::Acquire) == 0 && live(slot).is_some())
      .count()
  }

  /// The connections that have calls in flight.
  pub fn busy_connections(&self) -> Vec<Arc<Object>> {
    self
      .slots
      .iter()
      .filter(|slot| slot.in_flight.load(Ordering::Acquire) > 0)
      .filter_map(|slot| lock(&slot.connection).clone())
      .collect()
  }

  /// Lets go of idle connections now and of busy ones when their calls
  /// finish (until then `busy_connections` can still cancel them).
  pub fn release_all(&self) {
    self.closing.store(true, Ordering::Release);
    for slot in &self.slots {
      if slot.in_flight.load(Ordering::Acquire) == 0 {
        lock(&slot.connection).take();
      }
    }
  }
}

/// The slot's connection if it still works. A dead one is let go here, so
/// its pool permit comes back before a replacement is asked for (else a pool
/// whose connections all died would wait on its own dead objects).
fn live(slot: &Slot) -> Option<Arc<Object>> {
  let mut connection = lock(&slot.connection);
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
