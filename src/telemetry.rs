//! What telemetry may say about where a native pool connects: the
//! OpenTelemetry `server.address`, `server.port` and the database half of
//! `db.namespace`. Resolved from the same options, connection string and
//! `PG*` variables as the pool (`store::config`), and never the user or the
//! password.

use napi_derive::napi;
use tokio_postgres::config::Host;

use crate::js_types::NativeOptions;

/// The first configured server of a native pool (libpq tries hosts in order).
#[napi(object)]
pub struct ServerTarget {
  /// Host name, IP address, or the Unix socket directory.
  pub address: Option<String>,
  /// TCP port (for a socket directory, the port in the socket's file name); 5432 unless configured.
  pub port: Option<u32>,
  /// Database name.
  pub database: Option<String>,
}

/// Where a native pool built from `options` connects (see `ServerTarget`).
/// Rejects invalid options exactly as the pool's constructor does.
#[napi]
pub fn server_target(options: NativeOptions) -> napi::Result<ServerTarget> {
  let resolved = options
    .connect_options()
    .resolve(|key| std::env::var(key).ok())?;
  let pg = resolved.pg;
  let address = pg.get_hosts().first().map(|host| match host {
    Host::Tcp(name) => name.clone(),
    #[cfg(unix)]
    Host::Unix(path) => path.display().to_string(),
  });
  Ok(ServerTarget {
    address,
    // libpq's default when no port is configured.
    port: Some(pg.get_ports().first().map_or(5432, |port| u32::from(*port))),
    database: pg.get_dbname().map(str::to_owned),
  })
}

#[cfg(test)]
mod tests {
  use super::*;

  fn options(connection_string: &str) -> NativeOptions {
    NativeOptions {
      connection_string: Some(connection_string.into()),
      host: None,
      port: None,
      user: None,
      password: None,
      database: None,
      ssl: None,
      max: None,
      connection_timeout_millis: None,
      idle_timeout_millis: None,
      statement_timeout_millis: None,
      application_name: None,
      prepare: None,
      schema: None,
      table_prefix: None,
      current_profiles_table: None,
      profile_revisions_table: None,
      user_index_table: None,
    }
  }

  #[test]
  fn first_host_port_and_database_never_the_credentials() {
    let target = server_target(options(
      "postgres://app:topsecret@db1.example:6543,db2.example:7000/prod",
    ))
    .unwrap();
    assert_eq!(target.address.as_deref(), Some("db1.example"));
    assert_eq!(target.port, Some(6543));
    assert_eq!(target.database.as_deref(), Some("prod"));
  }

  #[cfg(unix)]
  #[test]
  fn default_port_and_socket_directory() {
    let target = server_target(options("host=/var/run/postgresql dbname=app user=u")).unwrap();
    assert_eq!(target.address.as_deref(), Some("/var/run/postgresql"));
    assert_eq!(target.port, Some(5432));
    assert_eq!(target.database.as_deref(), Some("app"));
  }
}
