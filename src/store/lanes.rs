//! Pooled connections shared by concurrent statements.
//!
//! tokio-postgres pipelines the queries that are in flight on one client, so
//! 32 concurrent calls do not need 32 connections, nor need to queue for 10:
//! each call picks a "lane" (one pooled connection) and sends at once. Every
//! statement of this package is a single autocommit statement, so sharing a
//! connection never mixes transaction state.
//!
//! A lane is chosen by load (`choose`): an idle open lane first. When every
//! open lane is busy and an empty one is left, that one opens a connection
//! in the background and the call takes whichever comes first: an open lane
//! going idle (a load takes ~0.2 ms) or the new connection. Opening one takes
//! a connect, an authentication and a first prepare (3 to 11 ms measured with
//! `PSON5` open-loop loads on 2 busy cores), so a call waits for it only when
//! no lane is open. With no empty lane left, a call is pipelined on the open
//! lane with the fewest calls in flight.
//! A lane whose calls have made no progress for `STALLED_AFTER` (a row
//! lock, a slow statement) is passed over, so one stuck call does not hold
//! up the rest; when every lane is stalled a call waits for progress up to
//! the pool's acquire timeout (`connectionTimeoutMillis`), then fails with
//! `timeout`, as a saturated node-postgres pool does.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};
use scopeguard::ScopeGuard;
use tokio::sync::Notify;

use super::limits::STALLED_AFTER;
use super::lock;
use crate::error::StoreError;

pub struct Lanes {
  lanes: Vec<Arc<Lane>>,
  /// Set by `release_all`: connections go back as their last call finishes.
  closing: AtomicBool,
  /// Signalled whenever a call finishes or a connection opens in the
  /// background, for calls waiting for a lane.
  progress: Arc<Notify>,
  acquire_timeout: Duration,
  /// Calls getting a connection (`poolStatus().waiting`): the pool's own
  /// count also has the connections opening in the background, for no call.
  waiting: AtomicUsize,
}

struct Lane {
  connection: Mutex<Option<Arc<Object>>>,
  /// Serialises opening a connection for this lane.
  opening: tokio::sync::Mutex<()>,
  /// Set while a connection opens in the background for this lane.
  opening_in_background: AtomicBool,
  /// The last background open failed: a call that needs this lane opens it
  /// itself (and meets the error); no other background open is tried until
  /// the idle reaper's next round (`release_idle`).
  open_failed: AtomicBool,
  in_flight: AtomicUsize,
  /// Set while a statement alone on this lane is being cancelled
  /// (`Lease::hold_alone`): no other call may be sent here meanwhile, as the
  /// cancel request would stop whatever the connection's backend runs.
  held: AtomicBool,
  /// Last time a call on this lane finished (or the lane was first used).
  last_used: Mutex<Instant>,
}

impl Lane {
  fn view(&self) -> View {
    View {
      open: live(self).is_some(),
      opening: self.opening_in_background.load(Ordering::Acquire)
        || self.open_failed.load(Ordering::Acquire),
      in_flight: self.in_flight.load(Ordering::Acquire),
      // A held lane is passed over as a stalled one is.
      stalled: self.stalled() || self.held.load(Ordering::SeqCst),
    }
  }

  /// Lets go of `client` if it is still this lane's connection (a newer
  /// one may have replaced it).
  fn let_go_of(&self, client: &Arc<Object>) {
    let mut connection = lock(&self.connection);
    if connection.as_ref().is_some_and(|c| Arc::ptr_eq(c, client)) {
      *connection = None;
    }
  }

  fn stalled(&self) -> bool {
    self.in_flight.load(Ordering::Acquire) > 0 && lock(&self.last_used).elapsed() >= STALLED_AFTER
  }
}

/// What `choose` sees of a lane.
#[derive(Debug, Clone, Copy, Default)]
struct View {
  open: bool,
  /// A connection is opening for it in the background (or the last such
  /// open failed): not one to open in the background.
  opening: bool,
  in_flight: usize,
  stalled: bool,
}

/// Where a call goes.
#[derive(Debug, PartialEq, Eq)]
enum Choice {
  /// Send on this open lane (idle, or the least busy when none is empty).
  Use(usize),
  /// Every open lane is busy: open a connection for this empty lane in the
  /// background, and wait for an open lane to go idle or this one to open.
  OpenAndWait(usize),
  /// No lane is open that could take the call: open this one (or join its
  /// opening) and send there.
  Open(usize),
  /// Every lane is open and stalled: wait for progress.
  Wait,
}

/// The pick policy (see the module header). A call waits for a connection
/// to open only when no open lane can take it.
fn choose(lanes: &[View]) -> Choice {
  if let Some(idle) = lanes.iter().position(|l| l.open && l.in_flight == 0) {
    return Choice::Use(idle);
  }
  let busy = (0..lanes.len())
    .filter(|&i| lanes[i].open && !lanes[i].stalled)
    .min_by_key(|&i| lanes[i].in_flight);
  let empty = lanes.iter().position(|l| !l.open && !l.opening);
  match (busy, empty) {
    (Some(_), Some(empty)) => Choice::OpenAndWait(empty),
    (Some(lane), None) => Choice::Use(lane),
    (None, _) => match lanes.iter().position(|l| !l.open) {
      Some(empty) => Choice::Open(empty),
      None => Choice::Wait,
    },
  }
}

/// A connection lent to one call; counts the call while it lives.
pub struct Lease<'a> {
  lane: &'a Lane,
  progress: &'a Notify,
  closing: &'a AtomicBool,
  /// Set by `discard`: the connection is known to be dead.
  dead: bool,
  /// Set by `retire`: a cancel request was sent to its backend.
  retired: AtomicBool,
  /// `None` only once dropped.
  client: Option<Arc<Object>>,
}

impl Lease<'_> {
  /// Holds this connection for cancelling the call's statement, if the call
  /// is alone on it: until the guard drops, no other call is sent here.
  /// `None` when other calls are pipelined on it (a cancel request would
  /// stop theirs) or another statement holds it.
  pub fn hold_alone(&self) -> Option<impl Drop + '_> {
    let held = &self.lane.held;
    // SeqCst with `Lanes::lease`'s increment-then-check: either this sees
    // the other call's count, or the other call sees the hold and moves on.
    if held
      .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
      .is_err()
    {
      return None;
    }
    let hold = scopeguard::guard((), move |()| held.store(false, Ordering::SeqCst));
    (self.lane.in_flight.load(Ordering::SeqCst) == 1).then_some(hold)
  }

  pub fn client(&self) -> &Object {
    self
      .client
      .as_ref()
      .expect("a lease has its client until it drops")
  }

  /// A cancel request was sent to this connection's backend. tokio-postgres
  /// does not wait for the server to act on it (libpq's PQcancel does), so
  /// it may still arrive after the statement ended and stop the next one.
  /// Called while the lane is held: the lane lets go of the connection now,
  /// and the lease closes it when it drops instead of giving it back to the
  /// pool.
  pub fn retire(&self) {
    self.retired.store(true, Ordering::Release);
    if let Some(client) = &self.client {
      self.lane.let_go_of(client);
    }
  }

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
    let Some(client) = self.client.take() else {
      return;
    };
    if self.dead || client.is_closed() || (others == 0 && self.closing.load(Ordering::Acquire)) {
      self.lane.let_go_of(&client);
    }
    // Out of the pool and closed, unless someone still holds a copy for a
    // moment (`busy_connections`): then the pool's check on its next
    // checkout (`RecyclingMethod::Verified`) is the last line.
    if self.retired.load(Ordering::Acquire) {
      if let Ok(object) = Arc::try_unwrap(client) {
        drop(Object::take(object));
      }
    }
  }
}

impl Lanes {
  pub fn new(count: usize, acquire_timeout: Duration) -> Self {
    let lanes = (0..count.max(1))
      .map(|_| {
        Arc::new(Lane {
          connection: Mutex::new(None),
          opening: tokio::sync::Mutex::new(()),
          opening_in_background: AtomicBool::new(false),
          open_failed: AtomicBool::new(false),
          in_flight: AtomicUsize::new(0),
          held: AtomicBool::new(false),
          last_used: Mutex::new(Instant::now()),
        })
      })
      .collect();
    Self {
      lanes,
      closing: AtomicBool::new(false),
      progress: Arc::new(Notify::new()),
      acquire_timeout,
      waiting: AtomicUsize::new(0),
    }
  }

  pub async fn lease(&self, pool: &Pool) -> Result<Lease<'_>, StoreError> {
    if pool.is_closed() {
      return Err(StoreError::Closed);
    }
    self.waiting.fetch_add(1, Ordering::AcqRel);
    let _waited = scopeguard::guard((), |()| {
      self.waiting.fetch_sub(1, Ordering::AcqRel);
    });
    let lane = loop {
      let lane = self.pick_or_wait(pool).await?;
      lane.in_flight.fetch_add(1, Ordering::SeqCst);
      // Held since it was picked (`Lease::hold_alone`): a cancel request is
      // on its way to this connection's backend; pick again.
      if !lane.held.load(Ordering::SeqCst) {
        break lane;
      }
      lane.in_flight.fetch_sub(1, Ordering::AcqRel);
    };
    // From here the count is undone by the Lease, or by this guard on error.
    let undo = scopeguard::guard((), |()| {
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
            lane.open_failed.store(false, Ordering::Release);
            *lock(&lane.connection) = Some(client.clone());
            client
          }
        }
      }
    };
    ScopeGuard::into_inner(undo);
    Ok(Lease {
      lane,
      progress: &self.progress,
      closing: &self.closing,
      dead: false,
      retired: AtomicBool::new(false),
      client: Some(client),
    })
  }

  async fn pick_or_wait(&self, pool: &Pool) -> Result<&Lane, StoreError> {
    let deadline = tokio::time::Instant::now() + self.acquire_timeout;
    loop {
      // Register before looking, so a completion in between is not missed.
      let progressed = self.progress.notified();
      let views: Vec<View> = self.lanes.iter().map(|lane| lane.view()).collect();
      match choose(&views) {
        Choice::Use(i) | Choice::Open(i) => return Ok(&self.lanes[i]),
        Choice::OpenAndWait(i) => self.open_in_background(i, pool),
        Choice::Wait => {}
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

  /// Opens a connection for lane `index` in a task of its own, unless one is
  /// already opening there, and wakes the calls waiting for a lane when done.
  fn open_in_background(&self, index: usize, pool: &Pool) {
    let lane = self.lanes[index].clone();
    if lane.opening_in_background.swap(true, Ordering::AcqRel) {
      return;
    }
    let pool = pool.clone();
    let progress = self.progress.clone();
    tokio::spawn(async move {
      {
        let _opening = lane.opening.lock().await;
        if live(&lane).is_none() {
          match pool.get().await {
            Ok(client) => {
              *lock(&lane.last_used) = Instant::now();
              *lock(&lane.connection) = Some(Arc::new(client));
              // Opened while close() let go of the lanes: let go of it too.
              if pool.is_closed() && lane.in_flight.load(Ordering::Acquire) == 0 {
                lock(&lane.connection).take();
              }
            }
            Err(_) => lane.open_failed.store(true, Ordering::Release),
          }
        }
      }
      lane.opening_in_background.store(false, Ordering::Release);
      progress.notify_waiters();
    });
  }

  /// Lets go of connections idle for longer than `idle` (the pool closes them).
  /// Lanes whose background open failed may be opened in the background again.
  pub fn release_idle(&self, idle: Duration) {
    for lane in &self.lanes {
      lane.open_failed.store(false, Ordering::Release);
      if lane.in_flight.load(Ordering::Acquire) == 0 && lock(&lane.last_used).elapsed() >= idle {
        lock(&lane.connection).take();
      }
    }
  }

  /// Calls getting a connection: waiting for one to free up or to open.
  pub fn waiting_count(&self) -> usize {
    self.waiting.load(Ordering::Acquire)
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

#[cfg(test)]
mod tests {
  use super::*;

  fn open(in_flight: usize) -> View {
    View {
      open: true,
      in_flight,
      ..View::default()
    }
  }

  const EMPTY: View = View {
    open: false,
    opening: false,
    in_flight: 0,
    stalled: false,
  };

  const OPENING: View = View {
    opening: true,
    ..EMPTY
  };

  fn stalled(in_flight: usize) -> View {
    View {
      stalled: true,
      ..open(in_flight)
    }
  }

  #[test]
  fn an_idle_open_lane_takes_the_call() {
    assert_eq!(choose(&[open(2), open(0), EMPTY]), Choice::Use(1));
    // Even a stalled lane's neighbours: idle comes first.
    assert_eq!(choose(&[stalled(1), open(0)]), Choice::Use(1));
  }

  #[test]
  fn a_call_never_waits_for_a_connection_to_open_while_a_lane_is_open() {
    // Every open lane busy, an empty one left: it opens in the background
    // and the call takes the first lane to go idle (or that connection).
    assert_eq!(choose(&[open(1), EMPTY, EMPTY]), Choice::OpenAndWait(1));
    // One already opening in the background: the next empty one opens too.
    assert_eq!(choose(&[open(1), OPENING, EMPTY]), Choice::OpenAndWait(2));
    // None left to open: pipelined on the least busy open lane.
    assert_eq!(choose(&[open(3), OPENING, open(1)]), Choice::Use(2));
    assert_eq!(choose(&[open(3), open(2)]), Choice::Use(1));
  }

  #[test]
  fn a_call_opens_a_connection_itself_only_when_no_open_lane_can_take_it() {
    // The first call of all.
    assert_eq!(choose(&[EMPTY, EMPTY]), Choice::Open(0));
    // Only a lane that is opening: join its opening.
    assert_eq!(choose(&[OPENING, EMPTY]), Choice::Open(0));
    // The open lanes are stalled (a row lock): a new connection.
    assert_eq!(choose(&[stalled(1), EMPTY]), Choice::Open(1));
  }

  #[test]
  fn stalled_lanes_are_passed_over_and_a_call_waits_when_all_are() {
    assert_eq!(choose(&[stalled(1), open(4)]), Choice::Use(1));
    assert_eq!(choose(&[stalled(1), stalled(2)]), Choice::Wait);
  }
}
