//! `NativeRepository`: the JS class over `store::Store`. Each method converts
//! at the edge and delegates; the logic lives in `store/` and in `index.js`.

use std::sync::{Arc, Weak};

use napi::bindgen_prelude::spawn;
use napi_derive::napi;

use crate::js_types::{JsCell, NativeOptions, PoolStatusJs};
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

  /// Runs the named statement (see `artifacts().queries`) with text parameters.
  #[napi(ts_return_type = "Promise<Array<Array<string | number | boolean | null>>>")]
  pub async fn query(&self, name: String, params: Vec<Option<String>>) -> napi::Result<Vec<Vec<JsCell>>> {
    let rows = self.store.run(&name, &params).await?;
    Ok(rows.into_iter().map(|row| row.into_iter().map(JsCell).collect()).collect())
  }

  /// Loads profile documents as JSON text (null when missing), one entry per
  /// id. The JS layer gathers the loads of one tick into one call, so a
  /// burst costs one crossing of the boundary instead of one per load.
  #[napi]
  pub async fn load_many(&self, profile_ids: Vec<String>) -> napi::Result<Vec<Option<String>>> {
    let loads = profile_ids.into_iter().map(|id| self.store.load(id));
    let documents = futures_util::future::join_all(loads).await;
    Ok(documents.into_iter().collect::<Result<_, _>>()?)
  }

  /// Saves a validated document; resolves to the stored revision, or null
  /// when `expectedRevision` did not match (nothing written).
  #[napi]
  pub async fn save(
    &self,
    profile_id: String,
    document: String,
    expected_revision: Option<i64>,
    context: Option<String>,
  ) -> napi::Result<Option<i64>> {
    let request = SaveRequest { profile_id, document, expected_revision, context };
    Ok(self.store.save(request).await?)
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
