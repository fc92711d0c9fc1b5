//! Coalesces concurrent calls of one kind into one statement.
//!
//! Under load, the calls that arrive while earlier statements run are sent
//! together: one round trip, one statement start and (for saves) one commit
//! for many callers, each of whom still gets their own result or error. At
//! light load a call goes out alone, at once, so batching adds no latency.
//!
//! `permits` (a semaphore; a permit is one statement running, never a
//! connection: connections are `lanes.rs`'s) bounds how many statements of
//! a kind run at once; while they are all busy, the queue grows and the next
//! batches with it. The calls waiting are shared evenly over the free
//! permits (`min_share` at least each), so a burst runs as several
//! statements side by side, on as many server processes. A batch that finds
//! no free permit for `STALLED_AFTER` (the running ones are stuck, e.g.
//! behind a row lock) goes out anyway. Every limit is in `limits.rs`.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;

use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot, AcquireError, OwnedSemaphorePermit, Semaphore};

use super::abandon::Abandon;
use super::limits::{KindLimits, MAX_STATEMENT_BYTES, STALLED_AFTER};
use super::{Runner, Shared};
use crate::error::StoreError;

/// One kind of call that can be coalesced.
pub trait BatchKind: Send + Sync + 'static {
  type Request: Send + 'static;
  type Output: Send + 'static;

  /// Calls with the same key never share a statement (e.g. two saves of one
  /// profile must be two revisions). `None`: any calls may share.
  fn exclusive_key(request: &Self::Request) -> Option<&str>;

  /// How the kind's calls are cut into statements (`limits.rs`).
  const LIMITS: KindLimits;

  /// Bytes this call adds to a statement (see `MAX_STATEMENT_BYTES`).
  fn bytes(_request: &Self::Request) -> usize {
    0
  }

  /// Runs a batch; one answer per request, in order: its outcome and how
  /// many calls the statement that produced it carried (the batch's size,
  /// or 1 for a call the kind ran alone). `abandon`: when every caller of
  /// the batch has given up on it.
  fn run(
    runner: &impl Runner,
    batch: &[Self::Request],
    abandon: &Abandon,
  ) -> impl Future<Output = Vec<Answer<Self::Output>>> + Send;
}

/// One caller's outcome, and how many calls the statement it ran in carried
/// (for telemetry: `db.operation.batch.size`).
pub type Answer<T> = (Result<T, StoreError>, usize);

struct Pending<K: BatchKind> {
  request: K::Request,
  abandon: Abandon,
  reply: oneshot::Sender<Answer<K::Output>>,
}

/// The scheduler of one kind of call. `R` runs the statements: the pool
/// (`Shared`), or a fake in unit tests.
pub struct Batcher<K: BatchKind, R: Runner = Shared> {
  queue: mpsc::UnboundedSender<Pending<K>>,
  runner: Arc<R>,
  permits: Arc<Semaphore>,
}

impl<K: BatchKind, R: Runner> Batcher<K, R> {
  /// Starts the dispatch task on the current tokio runtime, with the kind's
  /// `concurrent_statements` permits; it ends when the batcher is dropped.
  pub fn start(runner: Arc<R>) -> Self {
    Self::with_permits(runner, K::LIMITS.concurrent_statements)
  }

  fn with_permits(runner: Arc<R>, permits: usize) -> Self {
    let (queue, receiver) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(permits.max(1)));
    tokio::spawn(dispatch::<K, R>(runner.clone(), receiver, permits.clone()));
    Self {
      queue,
      runner,
      permits,
    }
  }

  /// Calls that arrive together (one N-API crossing). A statement's worth or
  /// more run as statements of their own at once, in the caller's task: the
  /// queue could only put them back together, at the cost of a hand-off
  /// between tasks per call (measured: ~25% more loads per second with 32 in
  /// flight). Fewer, or calls with exclusive keys, go through the queue to
  /// meet other calls. Answers in the order of `requests`.
  pub async fn call_together(
    &self,
    requests: Vec<K::Request>,
    abandon: Abandon,
  ) -> Vec<Answer<K::Output>> {
    let whole = requests.len() >= K::LIMITS.min_share
      && requests.iter().all(|r| K::exclusive_key(r).is_none());
    if !whole {
      let calls = requests
        .into_iter()
        .map(|request| self.call(request, abandon.clone()));
      return join_all(calls).await;
    }
    let abandon = &abandon;
    // These wait for a permit as long as it takes: the early way out of
    // `statement_permit` is for batches behind a row lock, and calls with no
    // exclusive key take none; a crowd of them giving up at once would lift
    // the bound just when the load is heaviest.
    let statements = requests
      .chunks(K::LIMITS.max_calls)
      .map(|batch| async move {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
          return batch.iter().map(|_| (Err(StoreError::Closed), 1)).collect();
        };
        K::run(&*self.runner, batch, abandon).await
      });
    join_all(statements).await.into_iter().flatten().collect()
  }

  pub async fn call(&self, request: K::Request, abandon: Abandon) -> Answer<K::Output> {
    let (reply, outcome) = oneshot::channel();
    let pending = Pending {
      request,
      abandon,
      reply,
    };
    if self.queue.send(pending).is_err() {
      return (Err(StoreError::Closed), 1);
    }
    // A dropped reply means the batch task died (a panic): never hang the caller.
    outcome.await.unwrap_or_else(|_| {
      (
        Err(StoreError::Internal(
          "the task running this call's statement panicked".into(),
        )),
        1,
      )
    })
  }
}

async fn dispatch<K: BatchKind, R: Runner>(
  runner: Arc<R>,
  mut receiver: mpsc::UnboundedReceiver<Pending<K>>,
  permits: Arc<Semaphore>,
) {
  // Calls whose key is already in the batch being formed wait for the next one.
  let mut deferred: VecDeque<Pending<K>> = VecDeque::new();
  loop {
    let first = match deferred.pop_front() {
      Some(pending) => pending,
      None => match receiver.recv().await {
        Some(pending) => pending,
        None => return,
      },
    };
    let Ok(permit) = statement_permit(&permits).await else {
      return;
    };
    let mut keys = HashSet::new();
    let mut bytes = 0;
    let mut batch = Vec::new();
    let mut later = VecDeque::new();
    let mut admit =
      |pending: Pending<K>, batch: &mut Vec<Pending<K>>, later: &mut VecDeque<Pending<K>>| {
        let size = K::bytes(&pending.request);
        let fits = batch.is_empty()
          || (batch.len() < K::LIMITS.max_calls
            && bytes + size <= MAX_STATEMENT_BYTES
            && K::exclusive_key(&pending.request).is_none_or(|key| !keys.contains(key)));
        if fits {
          if let Some(key) = K::exclusive_key(&pending.request) {
            keys.insert(key.to_owned());
          }
          bytes += size;
          batch.push(pending);
        } else {
          later.push_back(pending);
        }
      };
    // What waits is shared evenly over the free permits (min_share at least
    // each): under a burst the statements run side by side on as many server
    // processes, rather than one large statement while the other permits go unused.
    while let Ok(pending) = receiver.try_recv() {
      deferred.push_back(pending);
    }
    let free_permits = 1 + permits.available_permits();
    let share = (1 + deferred.len())
      .div_ceil(free_permits)
      .max(K::LIMITS.min_share)
      .min(K::LIMITS.max_calls);
    admit(first, &mut batch, &mut later);
    while batch.len() < share {
      match deferred.pop_front() {
        Some(pending) => admit(pending, &mut batch, &mut later),
        None => break,
      }
    }
    // Calls passed over keep their place at the front of the queue.
    while let Some(pending) = later.pop_back() {
      deferred.push_front(pending);
    }
    let runner = runner.clone();
    tokio::spawn(async move {
      let _permit = permit;
      let abandon = Abandon::all(batch.iter().map(|p| &p.abandon));
      let (requests, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.request, p.reply)).unzip();
      let answers = K::run(&*runner, &requests, &abandon).await;
      for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(answer);
      }
    });
  }
}

/// A permit for one statement, or `None` past STALLED_AFTER: a batch stuck
/// behind a row lock must not hold up the others, so this one then goes out
/// anyway. `Err` once the permits are closed.
async fn statement_permit(
  permits: &Arc<Semaphore>,
) -> Result<Option<OwnedSemaphorePermit>, AcquireError> {
  match tokio::time::timeout(STALLED_AFTER, permits.clone().acquire_owned()).await {
    Ok(permit) => permit.map(Some),
    Err(_elapsed) => Ok(None),
  }
}

#[cfg(test)]
mod tests {
  use std::sync::Mutex;
  use std::time::Duration;

  use super::*;
  use crate::store::coalesced::{Loads, SaveRequest, Saves};
  use crate::store::rows::Cell;

  /// A statement runner without a database: answers the statements that
  /// `coalesced.rs` sends as the server would, and records each statement's
  /// name and keys (profile ids) in the order they started.
  #[derive(Default)]
  struct FakeRunner {
    statements: Mutex<Vec<(String, Vec<String>)>>,
    /// Whether each statement could be abandoned (`Abandon::can_happen`).
    abandonable: Mutex<Vec<bool>>,
    /// Every batched save statement fails as a whole with this error.
    batched_saves_fail: Option<StoreError>,
    /// A save of this profile fails (alone or in a batch).
    bad_profile: Option<&'static str>,
  }

  fn document(key: &str) -> String {
    format!(r#"{{"key":"{key}"}}"#)
  }

  impl Runner for FakeRunner {
    async fn run(
      &self,
      name: &str,
      params: &[Option<String>],
      abandon: &Abandon,
    ) -> Result<Vec<Vec<Cell>>, StoreError> {
      self.abandonable.lock().unwrap().push(abandon.can_happen());
      let param = params[0].clone().unwrap_or_default();
      let keys: Vec<String> = match name {
        "loadProfile" => vec![param],
        // A text[] literal of plain keys: {"k1","k2"}.
        "loadProfiles" => param
          .trim_matches(|c| c == '{' || c == '}')
          .split(',')
          .map(|key| key.trim_matches('"').to_owned())
          .collect(),
        "saveProfile" => vec![profile_id(&serde_json::from_str(&param).unwrap())],
        "saveProfiles" => {
          let calls: Vec<serde_json::Value> = serde_json::from_str(&param).unwrap();
          calls.iter().map(|call| profile_id(&call["d"])).collect()
        }
        other => panic!("unexpected statement {other}"),
      };
      self
        .statements
        .lock()
        .unwrap()
        .push((name.to_owned(), keys.clone()));
      tokio::time::sleep(Duration::from_millis(5)).await;
      let bad = self
        .bad_profile
        .is_some_and(|bad| keys.iter().any(|key| key == bad));
      match name {
        "loadProfile" => Ok(vec![vec![Cell::Text(document(&keys[0]))]]),
        "loadProfiles" => Ok(
          keys
            .iter()
            .map(|key| vec![Cell::Text(key.clone()), Cell::Text(document(key))])
            .collect(),
        ),
        "saveProfiles" if self.batched_saves_fail.is_some() => {
          Err(self.batched_saves_fail.clone().unwrap())
        }
        _ if bad => Err(StoreError::Database(Box::new(
          crate::error::DatabaseFailure {
            message: "value too long".into(),
            sql_state: "22001".into(),
            detail: None,
            constraint: None,
            table: None,
            schema: None,
          },
        ))),
        _ => Ok(
          keys
            .iter()
            .map(|key| vec![Cell::Text(key.clone()), Cell::Int(1)])
            .collect(),
        ),
      }
    }
  }

  fn profile_id(document: &serde_json::Value) -> String {
    document["profile_id"].as_str().unwrap().to_owned()
  }

  fn save(profile_id: &str) -> SaveRequest {
    SaveRequest {
      profile_id: profile_id.to_owned(),
      document: format!(r#"{{"profile_id":"{profile_id}"}}"#),
      expected_revision: None,
      context: None,
    }
  }

  impl FakeRunner {
    /// The statements run so far (name, keys), cleared.
    fn take(&self) -> Vec<(String, Vec<String>)> {
      std::mem::take(&mut *self.statements.lock().unwrap())
    }
  }

  #[tokio::test]
  async fn loads_run_as_statements_of_eight_side_by_side() {
    let runner = Arc::new(FakeRunner::default());
    let batcher = Batcher::<Loads, _>::start(runner.clone());
    let keys = |n: usize| (0..n).map(|i| format!("k{i}")).collect::<Vec<_>>();
    for (burst, expected) in [(32, vec![8, 8, 8, 8]), (20, vec![8, 8, 4]), (1, vec![1])] {
      let answers = join_all(
        keys(burst)
          .into_iter()
          .map(|key| batcher.call(key, Abandon::Never)),
      )
      .await;
      check(&runner, answers, &expected, &format!("a burst of {burst}"));
    }
    // Calls asked for together: a statement's worth or more as their own
    // statements, fewer through the queue.
    for (together, expected) in [(8, vec![8]), (20, vec![8, 8, 4]), (3, vec![3])] {
      let answers = batcher.call_together(keys(together), Abandon::Never).await;
      check(&runner, answers, &expected, &format!("{together} together"));
    }
    // Well past STALLED_AFTER, calls asked for together still wait for a
    // permit (only batches behind a row lock may go out without one).
    let held = batcher
      .permits
      .clone()
      .acquire_many_owned(Loads::LIMITS.concurrent_statements as u32)
      .await
      .unwrap();
    let together = batcher.call_together(keys(8), Abandon::Never);
    tokio::pin!(together);
    let early = tokio::time::timeout(STALLED_AFTER * 2, &mut together).await;
    assert!(early.is_err(), "ran without a free permit");
    drop(held);
    check(
      &runner,
      together.await,
      &[8],
      "8 together after waiting for a permit",
    );
  }

  /// Each caller got its own document, in order, from statements of `sizes`,
  /// and was told the size of its statement.
  fn check(runner: &FakeRunner, answers: Vec<Answer<Option<String>>>, sizes: &[usize], what: &str) {
    let asked = answers.len();
    let told: Vec<usize> = answers.iter().map(|(_, calls)| *calls).collect();
    let answers: Vec<Option<String>> = answers
      .into_iter()
      .map(|(outcome, _)| outcome.unwrap())
      .collect();
    assert_eq!(
      answers,
      (0..asked)
        .map(|i| Some(document(&format!("k{i}"))))
        .collect::<Vec<_>>(),
      "{what}: answers"
    );
    let statements: Vec<usize> = runner.take().iter().map(|(_, keys)| keys.len()).collect();
    assert_eq!(statements, sizes, "{what}: statement sizes");
    let mut expected_told: Vec<usize> = sizes.iter().flat_map(|&size| vec![size; size]).collect();
    let mut told = told;
    expected_told.sort_unstable();
    told.sort_unstable();
    assert_eq!(told, expected_told, "{what}: sizes told to the callers");
  }

  #[tokio::test]
  async fn a_statement_can_be_abandoned_only_if_every_call_in_it_can() {
    let runner = Arc::new(FakeRunner::default());
    let batcher = Batcher::<Loads, _>::with_permits(runner.clone(), 1);
    let crossing =
      |token: &tokio_util::sync::CancellationToken| Abandon::crossing(Some(token.clone()));
    let (a, b) = (Default::default(), Default::default());
    // Two crossings with signals meet in one statement; then one of them
    // meets a call without a signal.
    join_all([
      batcher.call("k0".into(), crossing(&a)),
      batcher.call("k1".into(), crossing(&b)),
    ])
    .await;
    join_all([
      batcher.call("k0".into(), crossing(&a)),
      batcher.call("k1".into(), Abandon::Never),
    ])
    .await;
    // A statement's worth asked for together runs as its crossing's own.
    let keys = (0..8).map(|i| format!("k{i}")).collect();
    batcher.call_together(keys, crossing(&a)).await;
    let names: Vec<String> = runner.take().into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["loadProfiles"; 3]);
    assert_eq!(*runner.abandonable.lock().unwrap(), [true, false, true]);
  }

  #[tokio::test]
  async fn saves_of_one_profile_never_share_a_statement() {
    let runner = Arc::new(FakeRunner::default());
    let batcher = Batcher::<Saves, _>::start(runner.clone());
    // 40 saves of 20 profiles, each profile twice, in one burst.
    let ids: Vec<String> = (0..40).map(|i| format!("p{}", i % 20)).collect();
    let answers = join_all(ids.iter().map(|id| batcher.call(save(id), Abandon::Never))).await;
    for (outcome, _) in answers {
      assert_eq!(outcome.unwrap(), Some(1));
    }
    let statements = runner.take();
    let mut seen = 0;
    for (name, keys) in &statements {
      let mut unique = keys.clone();
      unique.sort();
      unique.dedup();
      assert_eq!(
        unique.len(),
        keys.len(),
        "{name} carries a profile twice: {keys:?}"
      );
      seen += keys.len();
    }
    assert_eq!(seen, 40, "every save ran once: {statements:?}");
    assert!(
      statements.len() >= 2,
      "the second save of each profile came later"
    );
  }

  #[tokio::test]
  async fn a_batched_save_that_fails_as_a_whole_is_retried_one_by_one() {
    let runner = Arc::new(FakeRunner {
      bad_profile: Some("bad"),
      ..FakeRunner::default()
    });
    let batcher = Batcher::<Saves, _>::with_permits(runner.clone(), 1);
    let ids = ["a", "b", "bad", "c"];
    let answers = join_all(ids.iter().map(|id| batcher.call(save(id), Abandon::Never))).await;
    let codes: Vec<&str> = answers
      .iter()
      .map(|(outcome, _)| outcome.as_ref().map_or_else(StoreError::code, |_| "ok"))
      .collect();
    assert_eq!(codes, ["ok", "ok", "database_error", "ok"]);
    // Each answer tells the statement that produced it: each save ran alone.
    let sizes: Vec<usize> = answers.iter().map(|(_, calls)| *calls).collect();
    assert_eq!(sizes, [1; 4]);
    let names: Vec<String> = runner.take().into_iter().map(|(name, _)| name).collect();
    // The four meet in one statement, which fails as a whole (and so was
    // rolled back) and is retried save by save.
    assert_eq!(
      names,
      [
        "saveProfiles",
        "saveProfile",
        "saveProfile",
        "saveProfile",
        "saveProfile"
      ]
    );
  }

  #[tokio::test]
  async fn a_lost_connection_fails_every_save_of_its_statement_and_none_is_retried() {
    let runner = Arc::new(FakeRunner {
      batched_saves_fail: Some(StoreError::connection("connection closed")),
      ..FakeRunner::default()
    });
    let batcher = Batcher::<Saves, _>::with_permits(runner.clone(), 1);
    let ids = ["a", "b", "c", "d"];
    let answers = join_all(ids.iter().map(|id| batcher.call(save(id), Abandon::Never))).await;
    let codes: Vec<&str> = answers
      .iter()
      .map(|(outcome, _)| outcome.as_ref().map_or_else(StoreError::code, |_| "ok"))
      .collect();
    // Their statement lost its connection: its commit's fate is unknown, so
    // a retry could save twice.
    assert_eq!(codes, ["connection_error"; 4]);
    let sizes: Vec<usize> = answers.iter().map(|(_, calls)| *calls).collect();
    assert_eq!(
      sizes, [4; 4],
      "all four heard the error of their shared statement"
    );
    let names: Vec<String> = runner.take().into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["saveProfiles"]);
  }
}
