//! Integration tests of the core against a real PostgreSQL (`DATABASE_URL`;
//! `npm test` sets it, starting an embedded server when needed).

use std::sync::Arc;

use pson5_postgres_store::store::coalesced::SaveRequest;
use pson5_postgres_store::store::config::ConnectOptions;
use pson5_postgres_store::store::rows::Cell;
use pson5_postgres_store::store::sql::Queries;
use pson5_postgres_store::store::Store;

fn database_url() -> String {
  std::env::var("DATABASE_URL").expect("DATABASE_URL must point at a PostgreSQL (npm test sets it)")
}

fn schema_name(label: &str) -> String {
  format!("rs_{label}_{}", std::process::id())
}

fn options() -> ConnectOptions {
  ConnectOptions {
    connection_string: Some(database_url()),
    max: Some(4),
    ..Default::default()
  }
}

/// Runs `sql` on a short-lived store of its own.
async fn admin_batch(sql: &str) {
  let admin = Store::connect(
    &options(),
    Arc::new(Queries::new("public", "pson_").unwrap()),
  )
  .unwrap();
  admin.batch(sql).await.unwrap();
  admin.close();
}

/// A store on a fresh schema of its own.
async fn fresh_store(label: &str) -> Store {
  let schema = schema_name(label);
  admin_batch(&format!(
    "drop schema if exists {schema} cascade; create schema {schema};"
  ))
  .await;
  let store = Store::connect(
    &options(),
    Arc::new(Queries::new(&schema, "pson_").unwrap()),
  )
  .unwrap();
  let ddl = store.queries().schema_sql.clone();
  store.batch(&ddl).await.unwrap();
  store.batch(&ddl).await.expect("the schema is idempotent");
  store
}

/// Drops a test's schema at its end (a failed test keeps it, for a look).
async fn drop_schema(label: &str) {
  admin_batch(&format!(
    "drop schema if exists {} cascade",
    schema_name(label)
  ))
  .await;
}

fn document(id: &str, user: &str) -> String {
  serde_json::json!({
    "profile_id": id, "user_id": user, "tenant_id": "t1", "pson_version": "5.0",
    "domains": { "active": ["core", "work"] }, "layers": {}, "metadata": { "revision": 99, "source_count": 1 }
  })
  .to_string()
}

/// The stored revision, or `None` on an expected-revision mismatch.
async fn save(store: &Store, id: &str, user: &str, expected: Option<i64>) -> Option<i64> {
  let request = SaveRequest {
    profile_id: id.into(),
    document: document(id, user),
    expected_revision: expected,
    context: None,
  };
  store.save(request).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_of_one_profile_get_every_revision_once() {
  let store = Arc::new(fresh_store("concurrent").await);
  let tasks: Vec<_> = (0..30)
    .map(|_| {
      let store = store.clone();
      tokio::spawn(async move { save(&store, "p1", "u1", None).await })
    })
    .collect();
  let mut revisions = Vec::new();
  for task in tasks {
    revisions.push(
      task
        .await
        .unwrap()
        .expect("no expected revision, so no conflict"),
    );
  }
  revisions.sort_unstable();
  assert_eq!(revisions, (1..=30).collect::<Vec<_>>());
  let audit = store
    .run("listRevisionNumbers", &[Some("p1".into())])
    .await
    .unwrap();
  assert_eq!(audit.len(), 30);
  drop_schema("concurrent").await;
}

/// A burst of saves queued at once is shared evenly over the save statements
/// that may run side by side (two), in statements of at least 16 saves. Each
/// statement is one transaction: its audit rows share an xmin.
#[tokio::test]
async fn a_burst_of_saves_is_shared_over_two_statements() {
  let label = "burst";
  let store = fresh_store(label).await;
  let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
    .await
    .expect("the tests' server takes plain connections");
  tokio::spawn(connection);
  let audit = format!("rs_{label}_{}.pson_profile_audit", std::process::id());
  let statement_sizes = |prefix: &'static str| {
    let sql = format!(
      "select count(*) from {audit} where profile_id like '{prefix}%' group by xmin::text order by 1"
    );
    let client = &client;
    async move {
      let rows = client.query(&sql, &[]).await.unwrap();
      rows.iter().map(|row| row.get(0)).collect::<Vec<i64>>()
    }
  };
  // On this single-threaded runtime every save of a burst is queued before
  // the batcher first runs.
  for (prefix, burst, expected) in [("a", 32, vec![16, 16]), ("b", 20, vec![4, 16])] {
    let ids: Vec<String> = (0..burst).map(|i| format!("{prefix}{i:02}")).collect();
    let saves = ids.iter().map(|id| save(&store, id, "u1", None));
    let revisions = futures_util::future::join_all(saves).await;
    assert!(revisions.iter().all(|revision| *revision == Some(1)));
    assert_eq!(statement_sizes(prefix).await, expected, "burst of {burst}");
  }
  drop_schema(label).await;
}

#[tokio::test]
async fn expected_revision_mismatch_writes_nothing() {
  let store = fresh_store("conflict").await;
  assert_eq!(save(&store, "p1", "u1", None).await, Some(1));
  assert_eq!(save(&store, "p1", "u1", Some(5)).await, None);
  assert_eq!(
    save(&store, "p2", "u1", Some(3)).await,
    None,
    "a missing profile is not at revision 3"
  );
  let revisions = store
    .run("listRevisionNumbers", &[Some("p1".into())])
    .await
    .unwrap();
  assert_eq!(revisions, vec![vec![Cell::Int(1)]]);
  assert_eq!(save(&store, "p1", "u1", Some(1)).await, Some(2));
  drop_schema("conflict").await;
}

#[tokio::test]
async fn index_rows_follow_saves_and_deletes() {
  let store = fresh_store("index").await;
  save(&store, "a", "u1", None).await;
  save(&store, "b", "u1", None).await;
  let ids = store
    .run("findProfilesByUserId", &[Some("u1".into())])
    .await
    .unwrap();
  assert_eq!(
    ids,
    vec![vec![Cell::Text("a".into())], vec![Cell::Text("b".into())]]
  );
  let deleted = store
    .run("deleteProfile", &[Some("a".into())])
    .await
    .unwrap();
  assert_eq!(deleted, vec![vec![Cell::Bool(true)]]);
  let ids = store
    .run("findProfilesByUserId", &[Some("u1".into())])
    .await
    .unwrap();
  assert_eq!(ids, vec![vec![Cell::Text("b".into())]]);
  drop_schema("index").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads_each_get_their_own_document() {
  let store = Arc::new(fresh_store("loads").await);
  for i in 0..20 {
    save(&store, &format!("l{i}"), "u1", None).await;
  }
  let tasks: Vec<_> = (0..40)
    .map(|i| {
      let store = store.clone();
      tokio::spawn(async move {
        let mut outcomes = store.load_together(vec![format!("l{i}")]).await;
        (i, outcomes.pop().unwrap().unwrap())
      })
    })
    .collect();
  for task in tasks {
    let (i, document) = task.await.unwrap();
    match document {
      Some(text) => {
        assert!(i < 20);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["profile_id"], format!("l{i}"));
      }
      None => assert!(i >= 20, "l{i} exists"),
    }
  }
  drop_schema("loads").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_asked_for_together_come_back_in_order() {
  let store = fresh_store("together").await;
  // Half the ids hold what a text[] literal must escape or would misread.
  let id = |i: usize| {
    if i.is_multiple_of(2) {
      format!("t{i}")
    } else {
      format!("t{i} \"q\" back\\slash, {{braces}} NULL é")
    }
  };
  for i in 0..12 {
    save(&store, &id(i), "u1", None).await;
  }
  // 20 ids (three statements: 8, 8 and 4), every fourth one missing, and
  // three (below a statement's worth, so through the queue).
  let ids: Vec<String> = (0..20)
    .map(|i| {
      if i % 4 == 3 {
        format!("missing{i}, \"{{}}\"")
      } else {
        id(i % 12)
      }
    })
    .collect();
  for asked in [ids.clone(), ids[..3].to_vec()] {
    let documents = store.load_together(asked.clone()).await;
    assert_eq!(documents.len(), asked.len());
    for (id, document) in asked.iter().zip(documents) {
      match document.unwrap() {
        Some(text) => {
          let value: serde_json::Value = serde_json::from_str(&text).unwrap();
          assert_eq!(value["profile_id"], id.as_str());
        }
        None => assert!(id.starts_with("missing"), "{id} exists"),
      }
    }
  }
  store.close();
  let closed = store.load_together(ids).await;
  assert!(closed
    .iter()
    .all(|d| matches!(d, Err(e) if e.code() == "closed")));
  drop_schema("together").await;
}

#[tokio::test]
async fn database_errors_carry_sql_state_and_closed_pool_says_closed() {
  let store = fresh_store("errors").await;
  let error = store
    .run("saveProfile", &[Some("not json".into()), None, None])
    .await
    .unwrap_err();
  assert_eq!(error.code(), "database_error");
  store.close();
  let error = store
    .run("loadProfile", &[Some("x".into())])
    .await
    .unwrap_err();
  assert_eq!(error.code(), "closed");
  drop_schema("errors").await;
}

#[tokio::test]
async fn unreachable_server_is_a_connection_error() {
  let options = ConnectOptions {
    connection_string: Some("postgres://postgres:hunter2@127.0.0.1:1/x".into()),
    connection_timeout_millis: Some(2000),
    ..Default::default()
  };
  let store = Store::connect(&options, Arc::new(Queries::new("public", "pson_").unwrap())).unwrap();
  let error = store
    .run("loadProfile", &[Some("x".into())])
    .await
    .unwrap_err();
  assert_eq!(error.code(), "connection_error");
  assert!(!error.to_string().contains("hunter2"));
}
