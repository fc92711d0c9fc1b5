//! Pooled connections shared by concurrent statements.
//!
//! tokio-postgres pipelines the queries that are in flight on one client, so
//! 32 concurrent calls do not need 32 connections, nor need to queue for 10:
//! each call picks a "lane" (one pooled connection) and sends at once. Every
//! statement of this package is a single autocommit statement, so sharing a
//! connection never mixes transaction state.
//!
//! A lane is chosen by load: an idle open lane first, then an empty slot (a new
//! connection), then the open lane with the fewest calls in flight, so a call
//! stuck behind a row lock does not hold up the others for long.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};

use crate::error::StoreError;

pub struct Lanes {
  slots: Vec<Slot>,
}

struct Slot {
  connection: Mutex<Option<Arc<Object>>>,
  /// Serialises opening a connection for this slot.
  opening: tokio::sync::Mutex<()>,
  in_flight: AtomicUsize,
  last_used: Mutex<Instant>,
}

/// A connection lent to one call; counts the call while it lives.
pub struct Lease<'a> {
  slot: &'a Slot,
  pub client: Arc<Object>,
}

impl Drop for Lease<'_> {
  fn drop(&mut self) {
    self.slot.in_flight.fetch_sub(1, Ordering::AcqRel);
    *lock(&self.slot.last_used) = Instant::now();
    // A connection that died is let go, so the pool replaces it.
    if self.client.is_closed() {
      let mut connection = lock(&self.slot.connection);
      if connection.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.client)) {
        *connection = None;
      }
    }
  }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
  // A panic while holding these short locks cannot leave them inconsistent.
  mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Lanes {
  pub fn new(count: usize) -> Self {
    let slots = (0..count.max(1))
      .map(|_| Slot {
        connection: Mutex::new(None),
        opening: tokio::sync::Mutex::new(()),
        in_flight: AtomicUsize::new(0),
        last_used: Mutex::new(Instant::now()),
      })
      .collect();
    Self { slots }
  }

  pub async fn lease(&self, pool: &Pool) -> Result<Lease<'_>, StoreError> {
    if pool.is_closed() {
      return Err(StoreError::Closed);
    }
    let slot = self.pick();
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
    Ok(Lease { slot, client })
  }

  fn pick(&self) -> &Slot {
    let open = |slot: &&Slot| live(slot).is_some();
    if let Some(idle) = self.slots.iter().filter(open).find(|s| s.in_flight.load(Ordering::Acquire) == 0) {
      return idle;
    }
    if let Some(empty) = self.slots.iter().find(|s| !open(s)) {
      return empty;
    }
    self.slots.iter().min_by_key(|s| s.in_flight.load(Ordering::Acquire)).expect("at least one lane")
  }

  /// Lets go of connections idle for longer than `idle` (the pool closes them).
  pub fn release_idle(&self, idle: Duration) {
    for slot in &self.slots {
      if slot.in_flight.load(Ordering::Acquire) == 0 && lock(&slot.last_used).elapsed() >= idle {
        lock(&slot.connection).take();
      }
    }
  }

  /// Lets go of every connection (calls in flight keep theirs until done).
  pub fn release_all(&self) {
    for slot in &self.slots {
      lock(&slot.connection).take();
    }
  }
}

fn live(slot: &Slot) -> Option<Arc<Object>> {
  lock(&slot.connection).as_ref().filter(|c| !c.is_closed()).cloned()
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
