//! `NativeRepository`: the JS class over `store::Store`. Each method converts
//! at the edge and delegates; the logic lives in `store/` and in `lib/`.
//!
//! Every async method clones the `Arc<Store>` into a `'static` future instead
//! of borrowing `&self`: a worker thread that is terminated with calls in
//! flight finalizes the JS object while those futures still run.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};

use futures_util::future::join_all;
use napi::bindgen_prelude::{spawn, Either, PromiseRaw, ToNapiValue};
use napi::Env;
use napi_derive::napi;
use tokio_util::sync::CancellationToken;

use crate::js_types::{
  CountedOutcome, JsCell, NativeOptions, Outcome, PoolStatusJs, QueryCall, SaveCall,
};
use crate::store::abandon::Abandon;
use crate::store::batcher::Answer;
use crate::store::coalesced::SaveRequest;
use crate::store::limits;
use crate::store::{lock, Store};

/// Rows as the JS side receives them.
type JsRows = Vec<Vec<JsCell>>;
/// A crossing's answers: one JSON array text when every call succeeded (one
/// string and one `JSON.parse` in JS), else one outcome per call. Asked for
/// with `counted`, always one outcome per call, each with the number of
/// calls its statement carried (`calls`, when more than one).
type AllAsJsonOrEach<T> = Either<String, Vec<CountedOutcome<T>>>;

/// How many loads JS sends per crossing under a burst: one statement's worth
/// (`limits::LOADS.min_share`), so each crossing is answered as soon as its
/// statement is done.
#[napi]
pub const LOADS_PER_CROSSING: u32 = limits::LOADS.min_share as u32;

/// Likewise for finds.
#[napi]
pub const FINDS_PER_CROSSING: u32 = limits::FINDS.min_share as u32;

/// Likewise for saves (and the other statements, which are not coalesced).
#[napi]
pub const SAVES_PER_CROSSING: u32 = limits::SAVES.min_share as u32;

/// About how many bytes of documents JS sends per crossing (an estimate;
/// `limits::CROSSING_BYTES`).
#[napi]
pub const CROSSING_BYTES: u32 = limits::CROSSING_BYTES as u32;

#[napi]
pub struct NativeRepository {
  store: Arc<Store>,
  crossings: Arc<Crossings>,
}

/// The crossings in flight that JS may abandon (`abandon`), by the id JS
/// gave them: JS gives one only when every call of the crossing carries an
/// `AbortSignal`.
#[derive(Default)]
struct Crossings(Mutex<HashMap<u32, CancellationToken>>);

impl Crossings {
  /// Registers crossing `id` until the returned guard drops (the crossing
  /// is answered, or its future dropped). Called on the JS thread, before
  /// the crossing's future is spawned, so an `abandon` that follows finds it.
  /// No id (a call without a signal), or an id still in use (JS's counter
  /// wrapped around a crossing that never ended): nothing to abandon.
  fn enter(self: &Arc<Self>, id: Option<u32>) -> (Abandon, Option<impl Drop + Send + 'static>) {
    let Some(id) = id else {
      return (Abandon::Never, None);
    };
    let token = CancellationToken::new();
    match lock(&self.0).entry(id) {
      Entry::Occupied(_) => return (Abandon::Never, None),
      Entry::Vacant(free) => free.insert(token.clone()),
    };
    let leave = scopeguard::guard(self.clone(), move |crossings| {
      lock(&crossings.0).remove(&id);
    });
    (Abandon::crossing(Some(token)), Some(leave))
  }

  fn abandon(&self, id: u32) {
    if let Some(token) = lock(&self.0).get(&id) {
      token.cancel();
    }
  }
}

/// Runs `work` with its own handle on the store, as a JS promise.
fn promise<'env, T, F>(
  env: &'env Env,
  store: &Arc<Store>,
  work: impl FnOnce(Arc<Store>) -> F,
) -> napi::Result<PromiseRaw<'env, T>>
where
  T: ToNapiValue + Send + 'static,
  F: Future<Output = napi::Result<T>> + Send + 'static,
{
  env.spawn_future(work(store.clone()))
}

#[napi]
impl NativeRepository {
  /// Builds the pool; connections open on first use.
  #[napi(constructor)]
  pub fn new(options: NativeOptions) -> napi::Result<Self> {
    let queries = options.queries()?;
    let store = Arc::new(Store::new(&options.connect_options(), Arc::new(queries))?);
    start_idle_reaper(Arc::downgrade(&store));
    Ok(Self {
      store,
      crossings: Arc::default(),
    })
  }

  /// Runs named statements (see `artifacts().queries`) with text parameters.
  /// The JS layer gathers the calls of one tick into one crossing.
  #[napi(
    ts_return_type = "Promise<Array<{ value?: Array<Array<string | number | boolean | null>>, error?: string }>>"
  )]
  pub fn query_many<'env>(
    &self,
    env: &'env Env,
    calls: Vec<QueryCall>,
    crossing: Option<u32>,
  ) -> napi::Result<PromiseRaw<'env, Vec<Outcome<JsRows>>>> {
    self.abandonable(env, crossing, |store, abandon| async move {
      let runs = calls
        .iter()
        .map(|call| store.run_abandonable(&call.name, &call.params, &abandon));
      let outcomes = join_all(runs).await.into_iter().map(|rows| {
        Outcome(rows.map(|rows| {
          rows
            .into_iter()
            .map(|row| row.into_iter().map(JsCell).collect())
            .collect()
        }))
      });
      Ok(outcomes.collect())
    })
  }

  /// Loads profile documents: a statement's worth as statements of their own
  /// at once, fewer coalesced with concurrent loads. When every load succeeds
  /// (and `counted` is not set) the result is one JSON text,
  /// `[document|null, ...]`, so JS makes one string and one `JSON.parse` for
  /// the crossing; otherwise one outcome per load.
  #[napi(
    ts_return_type = "Promise<string | Array<{ value?: string | null, error?: string, calls?: number }>>"
  )]
  pub fn load_many<'env>(
    &self,
    env: &'env Env,
    profile_ids: Vec<String>,
    counted: Option<bool>,
    crossing: Option<u32>,
  ) -> napi::Result<PromiseRaw<'env, AllAsJsonOrEach<Option<String>>>> {
    self.abandonable(env, crossing, move |store, abandon| async move {
      let documents = store.load_together_counted(profile_ids, abandon).await;
      Ok(all_as_json_or_each(documents, counted, |documents| {
        json_array(&documents)
      }))
    })
  }

  /// As `loadMany`, but always one outcome per load, each document its own
  /// JSON text, for `loadProfileJson`: the text reaches the caller unparsed.
  /// Loads through either method share statements (`Store::load_together`).
  #[napi(
    ts_return_type = "Promise<Array<{ value?: string | null, error?: string, calls?: number }>>"
  )]
  pub fn load_many_json<'env>(
    &self,
    env: &'env Env,
    profile_ids: Vec<String>,
    counted: Option<bool>,
    crossing: Option<u32>,
  ) -> napi::Result<PromiseRaw<'env, Vec<CountedOutcome<Option<String>>>>> {
    self.abandonable(env, crossing, move |store, abandon| async move {
      let documents = store.load_together_counted(profile_ids, abandon).await;
      Ok(each_outcome(documents, counted))
    })
  }

  /// The profile ids of each user, batched like `loadMany`. When every find
  /// succeeds (and `counted` is not set) the result is one JSON text,
  /// `[[id, ...], ...]`; otherwise one outcome per find.
  #[napi(
    ts_return_type = "Promise<string | Array<{ value?: string[], error?: string, calls?: number }>>"
  )]
  pub fn find_many<'env>(
    &self,
    env: &'env Env,
    user_ids: Vec<String>,
    counted: Option<bool>,
    crossing: Option<u32>,
  ) -> napi::Result<PromiseRaw<'env, AllAsJsonOrEach<Vec<String>>>> {
    self.abandonable(env, crossing, move |store, abandon| async move {
      let lists = store.find_together_counted(user_ids, abandon).await;
      Ok(all_as_json_or_each(lists, counted, |lists| {
        serde_json::to_string(&lists).expect("strings serialise")
      }))
    })
  }

  /// Saves validated documents, coalesced with concurrent saves of other
  /// profiles. Each outcome is the stored revision, or null when its
  /// `expectedRevision` did not match (nothing of it written); with
  /// `counted`, also how many saves its statement carried (`calls`).
  #[napi(
    ts_return_type = "Promise<Array<{ value?: number | null, error?: string, calls?: number }>>"
  )]
  pub fn save_many<'env>(
    &self,
    env: &'env Env,
    calls: Vec<SaveCall>,
    counted: Option<bool>,
    crossing: Option<u32>,
  ) -> napi::Result<PromiseRaw<'env, Vec<CountedOutcome<Option<i64>>>>> {
    self.abandonable(env, crossing, move |store, abandon| async move {
      let saves = calls.into_iter().map(|call| {
        let request = SaveRequest {
          profile_id: call.profile_id,
          document: call.document,
          expected_revision: call.expected_revision,
          context: call.context,
        };
        store.save_counted(request, abandon.clone())
      });
      Ok(each_outcome(join_all(saves).await, counted))
    })
  }

  /// Runs the schema DDL (idempotent).
  #[napi(ts_return_type = "Promise<void>")]
  pub fn ensure_schema<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
    promise(env, &self.store, |store| async move {
      let sql = store.queries().schema_sql.clone();
      Ok(store.execute_script(&sql).await?)
    })
  }

  /// Runs the 0.2.2 upgrade script (idempotent).
  #[napi(ts_return_type = "Promise<void>")]
  pub fn upgrade<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
    promise(env, &self.store, |store| async move {
      let sql = store.queries().upgrade_sql.clone();
      Ok(store.execute_script(&sql).await?)
    })
  }

  /// Asks the server to cancel the statements running on the pool's
  /// connections (used by `close()` when calls outlive its timeout).
  #[napi(ts_return_type = "Promise<void>")]
  pub fn cancel_running<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
    promise(env, &self.store, |store| async move {
      store.cancel_running().await;
      Ok(())
    })
  }

  /// Every call of crossing `crossing` (the id JS passed to `queryMany`,
  /// `loadMany`, `loadManyJson`, `findMany` or `saveMany`) was aborted after
  /// it was sent: a statement that serves only abandoned calls is not sent,
  /// or, running alone on its connection, is cancelled on the server (best
  /// effort). A crossing already answered is ignored.
  #[napi]
  pub fn abandon(&self, crossing: u32) {
    self.crossings.abandon(crossing);
  }

  /// Closes the pool; later calls fail with `closed`.
  #[napi]
  pub fn close(&self) {
    self.store.close();
  }

  #[napi]
  pub fn status(&self) -> PoolStatusJs {
    self.store.status().into()
  }
}

impl NativeRepository {
  /// `promise` for a crossing that JS may abandon (`crossing`: its id):
  /// `work` gets when its calls are abandoned, and the crossing stays
  /// registered until `work` is done.
  fn abandonable<'env, T, F>(
    &self,
    env: &'env Env,
    crossing: Option<u32>,
    work: impl FnOnce(Arc<Store>, Abandon) -> F,
  ) -> napi::Result<PromiseRaw<'env, T>>
  where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = napi::Result<T>> + Send + 'static,
  {
    let (abandon, entered) = self.crossings.enter(crossing);
    let work = work(self.store.clone(), abandon);
    env.spawn_future(async move {
      let _entered = entered;
      work.await
    })
  }
}

fn all_as_json_or_each<T>(
  answers: Vec<Answer<T>>,
  counted: Option<bool>,
  to_json: impl FnOnce(Vec<T>) -> String,
) -> AllAsJsonOrEach<T> {
  if counted != Some(true) && answers.iter().all(|(outcome, _)| outcome.is_ok()) {
    Either::A(to_json(
      answers
        .into_iter()
        .filter_map(|(outcome, _)| outcome.ok())
        .collect(),
    ))
  } else {
    Either::B(each_outcome(answers, counted))
  }
}

/// One outcome per answer; with `counted`, each says how many calls its
/// statement carried.
fn each_outcome<T>(answers: Vec<Answer<T>>, counted: Option<bool>) -> Vec<CountedOutcome<T>> {
  let counted = counted == Some(true);
  answers
    .into_iter()
    .map(|(outcome, calls)| CountedOutcome(outcome, counted.then_some(calls)))
    .collect()
}

/// `[a,null,b]` from JSON texts (`None` → `null`), without parsing them.
/// Sized up front: grown by doubling, the copies of a crossing's documents
/// cost ~1,000 instructions per load (callgrind).
fn json_array(documents: &[Option<String>]) -> String {
  let bytes: usize = documents
    .iter()
    .map(|document| document.as_ref().map_or(4, String::len) + 1)
    .sum();
  let mut out = String::with_capacity(bytes + 2);
  out.push('[');
  for (i, document) in documents.iter().enumerate() {
    if i > 0 {
      out.push(',');
    }
    out.push_str(document.as_deref().unwrap_or("null"));
  }
  out.push(']');
  out
}

/// Closes idle connections in the background. Holds only a weak reference,
/// so it ends with the repository (or its `close()`).
fn start_idle_reaper(store: Weak<Store>) {
  let Some(interval) = store.upgrade().and_then(|s| s.reap_interval()) else {
    return;
  };
  spawn(async move {
    loop {
      tokio::time::sleep(interval).await;
      match store.upgrade() {
        Some(store) if !store.is_closed() => store.reap_idle(),
        _ => break,
      }
    }
  });
}

/// Test hooks: built only with the cargo feature `test-hooks` (the debug
/// build the tests use, `npm run build:debug`), never into the published
/// binaries, and absent from `binding.d.ts`.
#[cfg(feature = "test-hooks")]
#[napi]
impl NativeRepository {
  /// Test hook, not part of the API: panics inside the runtime, directly in
  /// the call's future or in a task it waits on (as coalesced calls do), to
  /// show that a panic rejects the promise instead of aborting the process.
  #[napi(skip_typescript)]
  pub fn debug_panic<'env>(
    &self,
    env: &'env Env,
    in_spawned_task: bool,
  ) -> napi::Result<PromiseRaw<'env, ()>> {
    env.spawn_future(async move {
      if in_spawned_task {
        let task = tokio::spawn(async { panic!("debug_panic in a spawned task") });
        task.await.map_err(|error| {
          napi::Error::from(crate::error::StoreError::Internal(format!(
            "task failed: {error}"
          )))
        })?;
        Ok(())
      } else {
        panic!("debug_panic in the call's future")
      }
    })
  }
}
