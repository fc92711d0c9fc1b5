//! `NativeRepository`: the JS class over `store::Store`. Each method converts
//! at the edge and delegates; the logic lives in `store/` and in `index.js`.

use std::sync::{Arc, Weak};

use futures_util::future::join_all;
use napi::bindgen_prelude::spawn;
use napi_derive::napi;

use crate::js_types::{JsCell, NativeOptions, Outcome, PoolStatusJs, QueryCall, SaveCall};
use crate::store::coalesced::SaveRequest;
use crate::store::sql::Queries;
use crate::store::Store;

#[napi]
pub struct NativeRepository {
  store: Arc<Store>,
}

#[napi]
impl NativeRepository {
  /// Builds the pool; connections open on first use.
  #[napi(constructor)]
  pub fn new(options: NativeOptions) -> napi::Result<Self> {
    let queries = Queries::new(
      options.schema.as_deref().unwrap_or("public"),
      options.table_prefix.as_deref().unwrap_or("pson_"),
    )?;
    let store = Arc::new(Store::connect(&options.connect_options(), Arc::new(queries))?);
    start_idle_reaper(Arc::downgrade(&store));
    Ok(Self { store })
  }

  /// Runs named statements (see `artifacts().queries`) with text parameters.
  /// The JS layer gathers the calls of one tick into one crossing.
  #[napi(ts_return_type = "Promise<Array<{ value?: Array<Array<string | number | boolean | null>>, error?: string }>>")]
  pub async fn query_many(&self, calls: Vec<QueryCall>) -> Vec<Outcome<Vec<Vec<JsCell>>>> {
    let runs = calls.iter().map(|call| self.store.run(&call.name, &call.params));
    join_all(runs)
      .await
      .into_iter()
      .map(|rows| Outcome(rows.map(|rows| rows.into_iter().map(|row| row.into_iter().map(JsCell).collect()).collect())))
      .collect()
  }

  /// Loads profile documents as JSON text (null when missing), coalesced in
  /// Rust with concurrent loads into as few statements as possible.
  #[napi(ts_return_type = "Promise<Array<{ value?: string | null, error?: string }>>")]
  pub async fn load_many(&self, profile_ids: Vec<String>) -> Vec<Outcome<Option<String>>> {
    let loads = profile_ids.into_iter().map(|id| self.store.load(id));
    join_all(loads).await.into_iter().map(Outcome).collect()
  }

  /// Saves validated documents, coalesced with concurrent saves of other
  /// profiles. Each outcome is the stored revision, or null when its
  /// `expectedRevision` did not match (nothing of it written).
  #[napi(ts_return_type = "Promise<Array<{ value?: number | null, error?: string }>>")]
  pub async fn save_many(&self, calls: Vec<SaveCall>) -> Vec<Outcome<Option<i64>>> {
    let saves = calls.into_iter().map(|call| {
      self.store.save(SaveRequest {
        profile_id: call.profile_id,
        document: call.document,
        expected_revision: call.expected_revision,
        context: call.context,
      })
    });
    join_all(saves).await.into_iter().map(Outcome).collect()
  }

  /// Runs the schema DDL (idempotent).
  #[napi]
  pub async fn ensure_schema(&self) -> napi::Result<()> {
    let sql = self.store.queries().schema_sql.clone();
    Ok(self.store.batch(&sql).await?)
  }

  /// Runs the 0.2.2 upgrade script (idempotent).
  #[napi]
  pub async fn upgrade(&self) -> napi::Result<()> {
    let sql = self.store.queries().upgrade_sql.clone();
    Ok(self.store.batch(&sql).await?)
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
