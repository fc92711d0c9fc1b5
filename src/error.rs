//! The one error type of the crate and its one conversion to a JS error.
//!
//! A rejected napi Promise can only carry a Node-API status as `code`, so the
//! reason message is a small JSON envelope (`{code, message, sqlState?, ...}`)
//! that `index.js` turns into a `PostgresStoreError`.

use deadpool_postgres::{PoolError, TimeoutType};
use serde::Serialize;
use thiserror::Error;

/// SQLSTATE `query_canceled`: what `statement_timeout` raises.
const QUERY_CANCELED: &str = "57014";

#[derive(Debug, Clone, Error)]
pub enum StoreError {
  #[error("{message}")]
  Validation {
    field: &'static str,
    message: String,
  },

  /// `sql_state` when the server refused the connection (bad password,
  /// unknown database) or ended it (57P01 admin shutdown).
  #[error("{message}")]
  Connection {
    message: String,
    sql_state: Option<String>,
  },

  /// No connection became free (or opened) in time.
  #[error("{0}")]
  Timeout(String),

  /// The server cancelled the statement (SQLSTATE 57014, `query_canceled`):
  /// `statement_timeout`, or a cancel request. Code `timeout`, with the
  /// `sqlState` as the executor modes give it.
  #[error("{0}")]
  StatementCanceled(String),

  #[error("the repository is closed")]
  Closed,

  /// Every caller of the statement aborted it before it was sent
  /// (`store/abandon.rs`): it never reached the server. The callers have
  /// already been answered in JS; code `aborted`.
  #[error("every call of the statement was aborted before it was sent")]
  Abandoned,

  /// A fault of this crate, not of the database: a panic in a task a call
  /// waited on. Code `internal_error`, never `database_error`.
  #[error("internal error: {0}")]
  Internal(String),

  /// Boxed: the details are large and errors travel by value through every
  /// `Result` of the crate.
  #[error("{}", .0.message)]
  Database(Box<DatabaseFailure>),
}

/// What the server said about a failed statement.
#[derive(Debug, Clone)]
pub struct DatabaseFailure {
  pub message: String,
  pub sql_state: String,
  pub detail: Option<String>,
  pub constraint: Option<String>,
  pub table: Option<String>,
  pub schema: Option<String>,
}

impl StoreError {
  pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
    Self::Validation {
      field,
      message: message.into(),
    }
  }

  pub fn connection(message: impl Into<String>) -> Self {
    Self::Connection {
      message: message.into(),
      sql_state: None,
    }
  }

  /// SQLSTATE 26000 / 42P05: a prepared statement the connection does not know
  /// (or already has): what a transaction-mode pooler without prepared
  /// statement support (pgbouncer < 1.21) produces.
  pub fn is_lost_prepared_statement(&self) -> bool {
    matches!(self, Self::Database(failure) if failure.sql_state == "26000" || failure.sql_state == "42P05")
  }

  /// SQLSTATE 0A000 (`cached plan must not change result type`, after a
  /// schema change) or 26000 (unknown prepared statement): the server refused
  /// a cached statement before running it, so preparing it again and
  /// retrying cannot run it twice.
  pub fn is_stale_prepared_statement(&self) -> bool {
    matches!(self, Self::Database(failure) if failure.sql_state == "0A000" || failure.sql_state == "26000")
  }

  /// The stable string the JS error carries as `code`.
  pub fn code(&self) -> &'static str {
    match self {
      Self::Validation { .. } => "validation_error",
      Self::Connection { .. } => "connection_error",
      Self::Timeout(_) | Self::StatementCanceled(_) => "timeout",
      Self::Closed => "closed",
      Self::Abandoned => "aborted",
      Self::Internal(_) => "internal_error",
      Self::Database(_) => "database_error",
    }
  }

  pub fn field(&self) -> Option<&'static str> {
    match self {
      Self::Validation { field, .. } => Some(field),
      _ => None,
    }
  }

  fn envelope(&self) -> Envelope<'_> {
    let mut envelope = Envelope {
      code: self.code(),
      message: self.to_string(),
      ..Envelope::default()
    };
    match self {
      Self::Validation { field, .. } => envelope.field = Some(field),
      Self::Connection { sql_state, .. } => envelope.sql_state = sql_state.as_deref(),
      Self::StatementCanceled(_) => envelope.sql_state = Some(QUERY_CANCELED),
      Self::Database(failure) => {
        envelope.sql_state = Some(&failure.sql_state);
        envelope.detail = failure.detail.as_deref();
        envelope.constraint = failure.constraint.as_deref();
        envelope.table = failure.table.as_deref();
        envelope.schema = failure.schema.as_deref();
      }
      _ => {}
    }
    envelope
  }
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
  code: &'static str,
  message: String,
  #[serde(skip_serializing_if = "Option::is_none")]
  field: Option<&'a str>,
  #[serde(skip_serializing_if = "Option::is_none")]
  sql_state: Option<&'a str>,
  #[serde(skip_serializing_if = "Option::is_none")]
  detail: Option<&'a str>,
  #[serde(skip_serializing_if = "Option::is_none")]
  constraint: Option<&'a str>,
  #[serde(skip_serializing_if = "Option::is_none")]
  table: Option<&'a str>,
  #[serde(skip_serializing_if = "Option::is_none")]
  schema: Option<&'a str>,
}

impl From<tokio_postgres::Error> for StoreError {
  fn from(error: tokio_postgres::Error) -> Self {
    if let Some(db) = error.as_db_error() {
      let sql_state = db.code().code();
      if sql_state == QUERY_CANCELED {
        return Self::StatementCanceled(format!("statement canceled: {}", db.message()));
      }
      // Class 08 (connection exception) and 57P01..57P03 (server shutting down,
      // backend terminated): the connection is gone, not the statement wrong.
      if sql_state.starts_with("08") || sql_state.starts_with("57P") {
        return Self::Connection {
          message: format!("connection lost: {}", db.message()),
          sql_state: Some(sql_state.to_owned()),
        };
      }
      return Self::Database(Box::new(DatabaseFailure {
        message: db.message().to_owned(),
        sql_state: sql_state.to_owned(),
        detail: db.detail().map(str::to_owned),
        constraint: db.constraint().map(str::to_owned),
        table: db.table().map(str::to_owned),
        schema: db.schema().map(str::to_owned),
      }));
    }
    // No server error: an I/O failure, a closed socket or a protocol error.
    // The driver's top-level message ("error connecting to server") hides the
    // cause, so the chain is spelled out.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
      message.push_str(": ");
      message.push_str(&cause.to_string());
      source = cause.source();
    }
    Self::connection(message)
  }
}

impl From<PoolError> for StoreError {
  fn from(error: PoolError) -> Self {
    match error {
      PoolError::Closed => Self::Closed,
      PoolError::Timeout(TimeoutType::Wait) => {
        Self::Timeout("timed out waiting for a free connection in the pool".to_owned())
      }
      PoolError::Timeout(TimeoutType::Create) => {
        Self::connection("timed out connecting to the server")
      }
      PoolError::Timeout(TimeoutType::Recycle) => {
        Self::connection("timed out checking a pooled connection")
      }
      PoolError::Backend(error) => match Self::from(error) {
        // A connect that the server refused outright (bad password, unknown
        // database) is still a connection error to the caller.
        Self::Database(failure) => Self::Connection {
          message: format!("could not connect: {}", failure.message),
          sql_state: Some(failure.sql_state),
        },
        other => other,
      },
      PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
        Self::connection(error.to_string())
      }
    }
  }
}

impl From<StoreError> for napi::Error {
  fn from(error: StoreError) -> Self {
    let envelope = serde_json::to_string(&error.envelope()).unwrap_or_else(|_| {
      format!(
        r#"{{"code":"{}","message":"unprintable error"}}"#,
        error.code()
      )
    });
    napi::Error::new(napi::Status::GenericFailure, envelope)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn envelope_names_the_field_of_a_validation_error() {
    let error = napi::Error::from(StoreError::validation("tablePrefix", "bad prefix"));
    let json: serde_json::Value = serde_json::from_str(&error.reason).unwrap();
    assert_eq!(json["code"], "validation_error");
    assert_eq!(json["field"], "tablePrefix");
    assert_eq!(json["message"], "bad prefix");
  }

  #[test]
  fn pool_errors_map_to_stable_codes() {
    assert_eq!(StoreError::from(PoolError::Closed).code(), "closed");
    assert_eq!(
      StoreError::from(PoolError::Timeout(TimeoutType::Wait)).code(),
      "timeout"
    );
    assert_eq!(
      StoreError::from(PoolError::Timeout(TimeoutType::Create)).code(),
      "connection_error"
    );
  }

  #[test]
  fn a_cancelled_statement_is_a_timeout_with_its_sql_state() {
    let error = StoreError::StatementCanceled("statement canceled: statement timeout".into());
    assert_eq!(error.code(), "timeout");
    let json: serde_json::Value = serde_json::from_str(&napi::Error::from(error).reason).unwrap();
    assert_eq!(json["code"], "timeout");
    assert_eq!(json["sqlState"], QUERY_CANCELED);
    // A pool wait has no server answer, hence no SQLSTATE.
    let wait = StoreError::from(PoolError::Timeout(TimeoutType::Wait));
    let json: serde_json::Value = serde_json::from_str(&napi::Error::from(wait).reason).unwrap();
    assert_eq!(json["code"], "timeout");
    assert!(json.get("sqlState").is_none());
  }

  #[test]
  fn an_internal_fault_is_never_a_database_error() {
    let error = StoreError::Internal("the task panicked".into());
    let json: serde_json::Value = serde_json::from_str(&napi::Error::from(error).reason).unwrap();
    assert_eq!(json["code"], "internal_error");
    assert!(json.get("sqlState").is_none());
  }

  #[test]
  fn database_error_envelope_carries_sql_state() {
    let error = StoreError::Database(Box::new(DatabaseFailure {
      message: "duplicate key".into(),
      sql_state: "23505".into(),
      detail: Some("Key (id)=(1) exists".into()),
      constraint: Some("t_pkey".into()),
      table: Some("t".into()),
      schema: Some("public".into()),
    }));
    let json: serde_json::Value = serde_json::from_str(&napi::Error::from(error).reason).unwrap();
    assert_eq!(json["code"], "database_error");
    assert_eq!(json["sqlState"], "23505");
    assert_eq!(json["constraint"], "t_pkey");
  }
}
