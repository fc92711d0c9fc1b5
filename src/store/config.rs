//! Connection options → `tokio_postgres::Config`, TLS settings and pool limits.
//!
//! Precedence follows node-postgres and libpq: an explicit option, then the
//! connection string (`DATABASE_URL` in the zero-argument form), then the `PG*`
//! environment variables, then libpq's defaults. `sslmode` values that
//! tokio-postgres does not parse itself (`verify-ca`, `verify-full`) and
//! `sslrootcert` are taken out of the connection string and handled in `tls.rs`.

use std::fmt;
use std::time::Duration;

use tokio_postgres::config::SslMode as DriverSslMode;

use crate::error::StoreError;

/// node-postgres' default pool size.
const DEFAULT_MAX: usize = 10;
/// How long a caller waits for a pooled connection, and a connect may take,
/// when `connectionTimeoutMillis` is not set (node-postgres waits forever; a
/// production library should not).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// node-postgres' default `idleTimeoutMillis`.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_APPLICATION_NAME: &str = "pson5-postgres-store";

/// Connection parameters that tokio-postgres does not parse but we do.
const TLS_PARAMS: [&str; 2] = ["sslmode", "sslrootcert"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
  Disable,
  Prefer,
  Require,
  VerifyCa,
  VerifyFull,
}

impl SslMode {
  fn parse(value: &str, field: &'static str) -> Result<Self, StoreError> {
    match value {
      "disable" => Ok(Self::Disable),
      "allow" | "prefer" => Ok(Self::Prefer),
      "require" => Ok(Self::Require),
      "verify-ca" => Ok(Self::VerifyCa),
      "verify-full" => Ok(Self::VerifyFull),
      other => Err(StoreError::validation(
        field,
        format!(
          "sslmode '{other}' is not one of disable, allow, prefer, require, verify-ca, verify-full"
        ),
      )),
    }
  }

  fn driver_mode(self) -> DriverSslMode {
    match self {
      Self::Disable => DriverSslMode::Disable,
      Self::Prefer => DriverSslMode::Prefer,
      Self::Require | Self::VerifyCa | Self::VerifyFull => DriverSslMode::Require,
    }
  }
}

/// Where trusted roots come from when a mode verifies certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCerts {
  /// The Mozilla roots shipped in `webpki-roots`.
  Public,
  /// PEM text (node-postgres' `ssl.ca`).
  Pem(String),
  /// A PEM file (libpq's `sslrootcert`).
  File(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
  pub mode: SslMode,
  pub roots: RootCerts,
}

/// node-postgres' `ssl` option.
#[derive(Clone, Debug, Default)]
pub enum SslOption {
  #[default]
  Unset,
  /// `ssl: false` / `ssl: true`.
  Enabled(bool),
  /// `ssl: { rejectUnauthorized, ca }`.
  Custom {
    reject_unauthorized: Option<bool>,
    ca: Option<String>,
  },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSettings {
  pub max_size: usize,
  pub connect_timeout: Duration,
  pub idle_timeout: Option<Duration>,
  /// Use named prepared statements (cached per connection).
  pub prepare: bool,
}

/// What the JS layer passes for the native pool (already free of JS types).
#[derive(Clone, Default)]
pub struct ConnectOptions {
  pub connection_string: Option<String>,
  pub host: Option<String>,
  pub port: Option<u16>,
  pub user: Option<String>,
  pub password: Option<String>,
  pub database: Option<String>,
  pub ssl: SslOption,
  pub max: Option<u32>,
  pub connection_timeout_millis: Option<u32>,
  pub idle_timeout_millis: Option<u32>,
  pub statement_timeout_millis: Option<u32>,
  pub application_name: Option<String>,
  pub prepare: Option<bool>,
}

// Hand-written so the password can never reach a log line.
impl fmt::Debug for ConnectOptions {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("ConnectOptions")
      .field(
        "connection_string",
        &self.connection_string.as_ref().map(|_| "<redacted>"),
      )
      .field("host", &self.host)
      .field("port", &self.port)
      .field("user", &self.user)
      .field("password", &self.password.as_ref().map(|_| "<redacted>"))
      .field("database", &self.database)
      .field("max", &self.max)
      .finish_non_exhaustive()
  }
}

/// Everything needed to build the pool.
pub struct ResolvedConfig {
  pub pg: tokio_postgres::Config,
  pub tls: TlsSettings,
  pub pool: PoolSettings,
}

/// The operating-system user name, as libpq takes it when neither `user`, the
/// connection string nor `PGUSER` name one: the user of the effective uid
/// (`getpwuid_r(geteuid())` on Unix), never the `USER` variable.
fn os_user() -> Option<String> {
  whoami::username().ok().filter(|name| !name.is_empty())
}

impl ConnectOptions {
  /// Resolves options against the connection string and `env` (a lookup, so
  /// tests need not touch the process environment).
  pub fn resolve(
    &self,
    env: impl Fn(&str) -> Option<String>,
  ) -> Result<ResolvedConfig, StoreError> {
    self.resolve_with(env, os_user)
  }

  /// `resolve` with the OS user lookup passed in (for tests).
  fn resolve_with(
    &self,
    env: impl Fn(&str) -> Option<String>,
    os_user: impl Fn() -> Option<String>,
  ) -> Result<ResolvedConfig, StoreError> {
    let mut tls_params = Vec::new();
    let mut pg = match &self.connection_string {
      Some(text) => {
        let (rest, taken) = take_params(text, &TLS_PARAMS);
        tls_params = taken;
        rest.parse::<tokio_postgres::Config>().map_err(|error| {
          // The driver's message never echoes the string, so no secret leaks.
          StoreError::validation(
            "connectionString",
            format!("invalid connection string: {error}"),
          )
        })?
      }
      None => tokio_postgres::Config::new(),
    };

    if let Some(host) = &self.host {
      pg = replace_hosts(pg, host);
    } else if pg.get_hosts().is_empty() {
      let host = env("PGHOST").unwrap_or_else(|| "localhost".to_owned());
      pg = replace_hosts(pg, &host);
    }
    match self
      .port
      .or_else(|| env("PGPORT").and_then(|p| p.parse().ok()))
    {
      Some(port) if self.port.is_some() || pg.get_ports().is_empty() => {
        pg = replace_ports(pg, port);
      }
      _ => {}
    }
    let user = self
      .user
      .clone()
      .or_else(|| pg.get_user().map(str::to_owned));
    let user = user
      .or_else(|| env("PGUSER"))
      .or_else(os_user)
      .unwrap_or_else(|| "postgres".to_owned());
    pg.user(&user);
    if let Some(password) = self.password.clone().or_else(|| {
      if pg.get_password().is_none() {
        env("PGPASSWORD")
      } else {
        None
      }
    }) {
      pg.password(password);
    }
    let database = self
      .database
      .clone()
      .or_else(|| pg.get_dbname().map(str::to_owned));
    pg.dbname(database.or_else(|| env("PGDATABASE")).unwrap_or(user));
    // An explicit option wins over the connection string, which wins over
    // libpq's PGAPPNAME.
    let application_name = self
      .application_name
      .clone()
      .or_else(|| pg.get_application_name().map(str::to_owned))
      .or_else(|| env("PGAPPNAME"))
      .unwrap_or_else(|| DEFAULT_APPLICATION_NAME.to_owned());
    pg.application_name(&application_name);
    if pg.get_options().is_none() {
      if let Some(options) = env("PGOPTIONS") {
        pg.options(&options);
      }
    }
    if let Some(millis) = self.statement_timeout_millis {
      // Added after the connection string's `options` (libpq's
      // `-c name=value` list), not instead of them: the server applies them
      // in order, so the explicit setting wins and the others stay.
      let explicit = format!("-c statement_timeout={millis}");
      let options = match pg.get_options() {
        Some(existing) if !existing.trim().is_empty() => format!("{existing} {explicit}"),
        _ => explicit,
      };
      pg.options(&options);
    }

    let connect_timeout = self
      .connection_timeout_millis
      .filter(|millis| *millis > 0)
      .map(|millis| Duration::from_millis(millis.into()))
      .or_else(|| pg.get_connect_timeout().copied())
      .or_else(|| {
        env("PGCONNECT_TIMEOUT")
          .and_then(|s| s.parse().ok())
          .map(Duration::from_secs)
      })
      .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    pg.connect_timeout(connect_timeout);
    // Dead peers are noticed by the kernel, not only when a query times out.
    pg.keepalives(true);
    pg.keepalives_idle(Duration::from_secs(30));

    let tls = self.tls_settings(&tls_params, &env)?;
    pg.ssl_mode(tls.mode.driver_mode());

    let pool = PoolSettings {
      max_size: match self.max {
        Some(0) => return Err(StoreError::validation("max", "max must be at least 1")),
        Some(max) => max as usize,
        None => DEFAULT_MAX,
      },
      connect_timeout,
      idle_timeout: match self.idle_timeout_millis {
        // node-postgres: 0 disables idle disconnection.
        Some(0) => None,
        Some(millis) => Some(Duration::from_millis(millis.into())),
        None => Some(DEFAULT_IDLE_TIMEOUT),
      },
      prepare: self.prepare.unwrap_or(true),
    };
    Ok(ResolvedConfig { pg, tls, pool })
  }

  fn tls_settings(
    &self,
    url_params: &[(String, String)],
    env: &impl Fn(&str) -> Option<String>,
  ) -> Result<TlsSettings, StoreError> {
    let url_param = |key: &str| {
      url_params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
    };
    let root_file = url_param("sslrootcert").or_else(|| env("PGSSLROOTCERT"));
    let roots = |ca: Option<String>| match (ca, root_file.clone()) {
      (Some(pem), _) => RootCerts::Pem(pem),
      (None, Some(file)) => RootCerts::File(file),
      (None, None) => RootCerts::Public,
    };
    let mode = match &self.ssl {
      SslOption::Enabled(false) => SslMode::Disable,
      // node-postgres verifies the certificate and host name unless told not to.
      SslOption::Enabled(true) => SslMode::VerifyFull,
      SslOption::Custom {
        reject_unauthorized: Some(false),
        ..
      } => SslMode::Require,
      SslOption::Custom { ca, .. } => {
        return Ok(TlsSettings {
          mode: SslMode::VerifyFull,
          roots: roots(ca.clone()),
        })
      }
      SslOption::Unset => match url_param("sslmode") {
        Some(mode) => SslMode::parse(&mode, "connectionString")?,
        None => match env("PGSSLMODE") {
          Some(mode) => SslMode::parse(&mode, "PGSSLMODE")?,
          // libpq's default; node-postgres' is "no TLS", which `prefer` also
          // gives against a server without TLS.
          None => SslMode::Prefer,
        },
      },
    };
    Ok(TlsSettings {
      mode,
      roots: roots(None),
    })
  }
}

/// Splits `keys` out of a URL query string or a `key=value` string.
fn take_params(text: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
  let mut taken = Vec::new();
  let is_url = text.starts_with("postgres://") || text.starts_with("postgresql://");
  if is_url {
    let Some((base, query)) = text.split_once('?') else {
      return (text.to_owned(), taken);
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
      let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
      if keys.contains(&key) {
        taken.push((key.to_owned(), percent_decode(value)));
      } else {
        kept.push(pair);
      }
    }
    let rest = if kept.is_empty() {
      base.to_owned()
    } else {
      format!("{base}?{}", kept.join("&"))
    };
    (rest, taken)
  } else {
    let mut kept = Vec::new();
    for token in text.split_whitespace() {
      match token.split_once('=') {
        Some((key, value)) if keys.contains(&key) => {
          taken.push((key.to_owned(), value.trim_matches('\'').to_owned()))
        }
        _ => kept.push(token),
      }
    }
    (kept.join(" "), taken)
  }
}

fn percent_decode(value: &str) -> String {
  let bytes = value.as_bytes();
  let mut out = Vec::with_capacity(bytes.len());
  let mut i = 0;
  while i < bytes.len() {
    let hex = |b: u8| (b as char).to_digit(16);
    if bytes[i] == b'%' && i + 2 < bytes.len() {
      if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
        out.push((h * 16 + l) as u8);
        i += 3;
        continue;
      }
    }
    out.push(bytes[i]);
    i += 1;
  }
  String::from_utf8_lossy(&out).into_owned()
}

/// Replaces every host of `pg` (tokio-postgres can only append hosts).
fn replace_hosts(pg: tokio_postgres::Config, hosts: &str) -> tokio_postgres::Config {
  let mut fresh = copy_without_hosts(&pg, true);
  for host in hosts.split(',') {
    if host.starts_with('/') {
      fresh.host_path(host);
    } else {
      fresh.host(host);
    }
  }
  for port in pg.get_ports() {
    fresh.port(*port);
  }
  fresh
}

/// Sets `port` for every host.
fn replace_ports(pg: tokio_postgres::Config, port: u16) -> tokio_postgres::Config {
  let mut fresh = copy_without_hosts(&pg, false);
  for _ in 0..pg.get_hosts().len().max(1) {
    fresh.port(port);
  }
  fresh
}

/// A copy of `pg` without its ports, and without its hosts when `drop_hosts`.
fn copy_without_hosts(pg: &tokio_postgres::Config, drop_hosts: bool) -> tokio_postgres::Config {
  use tokio_postgres::config::Host;
  let mut fresh = tokio_postgres::Config::new();
  if !drop_hosts {
    for host in pg.get_hosts() {
      match host {
        Host::Tcp(name) => fresh.host(name),
        Host::Unix(path) => fresh.host_path(path),
      };
    }
  }
  if let Some(user) = pg.get_user() {
    fresh.user(user);
  }
  if let Some(password) = pg.get_password() {
    fresh.password(password);
  }
  if let Some(dbname) = pg.get_dbname() {
    fresh.dbname(dbname);
  }
  if let Some(options) = pg.get_options() {
    fresh.options(options);
  }
  if let Some(name) = pg.get_application_name() {
    fresh.application_name(name);
  }
  if let Some(timeout) = pg.get_connect_timeout() {
    fresh.connect_timeout(*timeout);
  }
  fresh.target_session_attrs(pg.get_target_session_attrs());
  fresh.load_balance_hosts(pg.get_load_balance_hosts());
  fresh.channel_binding(pg.get_channel_binding());
  fresh
}

#[cfg(test)]
mod tests {
  use super::*;
  use tokio_postgres::config::Host;

  fn no_env(_: &str) -> Option<String> {
    None
  }

  #[test]
  fn url_with_verify_full_and_root_cert() {
    let options = ConnectOptions {
      connection_string: Some(
        "postgresql://app:s%40cret@db.internal:6432/prod?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x"
          .into(),
      ),
      ..Default::default()
    };
    let resolved = options.resolve(no_env).unwrap();
    assert_eq!(resolved.tls.mode, SslMode::VerifyFull);
    assert_eq!(resolved.tls.roots, RootCerts::File("/tmp/ca.pem".into()));
    assert_eq!(resolved.pg.get_password(), Some(&b"s@cret"[..]));
    assert_eq!(resolved.pg.get_dbname(), Some("prod"));
    assert_eq!(resolved.pg.get_ports(), &[6432]);
    assert_eq!(resolved.pg.get_application_name(), Some("x"));
  }

  #[test]
  fn explicit_options_win_over_url_and_env() {
    let options = ConnectOptions {
      connection_string: Some("postgres://u@a:1/d".into()),
      host: Some("b".into()),
      port: Some(2),
      database: Some("e".into()),
      ..Default::default()
    };
    let env = |key: &str| (key == "PGHOST").then(|| "c".to_owned());
    let resolved = options.resolve(env).unwrap();
    assert_eq!(resolved.pg.get_hosts(), &[Host::Tcp("b".into())]);
    assert_eq!(resolved.pg.get_ports(), &[2]);
    assert_eq!(resolved.pg.get_dbname(), Some("e"));
    assert_eq!(resolved.pg.get_user(), Some("u"));
  }

  #[test]
  fn pg_env_fills_what_is_missing() {
    let env = |key: &str| match key {
      "PGHOST" => Some("envhost".to_owned()),
      "PGPORT" => Some("5555".to_owned()),
      "PGUSER" => Some("envuser".to_owned()),
      "PGPASSWORD" => Some("pw".to_owned()),
      "PGSSLMODE" => Some("require".to_owned()),
      _ => None,
    };
    let resolved = ConnectOptions::default().resolve(env).unwrap();
    assert_eq!(resolved.pg.get_hosts(), &[Host::Tcp("envhost".into())]);
    assert_eq!(resolved.pg.get_ports(), &[5555]);
    assert_eq!(resolved.pg.get_user(), Some("envuser"));
    assert_eq!(resolved.pg.get_dbname(), Some("envuser"));
    assert_eq!(resolved.tls.mode, SslMode::Require);
  }

  #[test]
  fn node_postgres_ssl_option() {
    let resolve = |ssl| {
      ConnectOptions {
        ssl,
        ..Default::default()
      }
      .resolve(no_env)
      .unwrap()
      .tls
      .mode
    };
    assert_eq!(resolve(SslOption::Enabled(true)), SslMode::VerifyFull);
    assert_eq!(resolve(SslOption::Enabled(false)), SslMode::Disable);
    assert_eq!(
      resolve(SslOption::Custom {
        reject_unauthorized: Some(false),
        ca: None
      }),
      SslMode::Require
    );
  }

  #[test]
  fn bad_sslmode_is_a_validation_error_without_the_url() {
    let options = ConnectOptions {
      connection_string: Some("postgres://u:topsecret@h/d?sslmode=bogus".into()),
      ..Default::default()
    };
    let error = options.resolve(no_env).err().unwrap();
    assert_eq!(error.code(), "validation_error");
    assert!(!error.to_string().contains("topsecret"));
  }

  #[test]
  fn debug_output_hides_the_password() {
    let options = ConnectOptions {
      connection_string: Some("postgres://u:topsecret@h/d".into()),
      password: Some("topsecret".into()),
      ..Default::default()
    };
    assert!(!format!("{options:?}").contains("topsecret"));
  }

  #[test]
  fn statement_timeout_is_added_to_the_url_options_not_put_in_their_place() {
    let options = ConnectOptions {
      connection_string: Some(
        "postgres://u@h/d?options=-c%20lock_timeout%3D250%20-c%20statement_timeout%3D1".into(),
      ),
      statement_timeout_millis: Some(8000),
      ..Default::default()
    };
    let resolved = options.resolve(no_env).unwrap();
    // The server applies `-c` settings in order: the explicit one comes last.
    assert_eq!(
      resolved.pg.get_options(),
      Some("-c lock_timeout=250 -c statement_timeout=1 -c statement_timeout=8000")
    );
  }

  #[test]
  fn pgoptions_fills_in_when_the_url_has_none() {
    let env = |key: &str| (key == "PGOPTIONS").then(|| "-c lock_timeout=100".to_owned());
    let options = ConnectOptions {
      statement_timeout_millis: Some(50),
      ..Default::default()
    };
    let resolved = options.resolve(env).unwrap();
    assert_eq!(
      resolved.pg.get_options(),
      Some("-c lock_timeout=100 -c statement_timeout=50")
    );
    let with_url = ConnectOptions {
      connection_string: Some("postgres://u@h/d?options=-c%20work_mem%3D1MB".into()),
      ..Default::default()
    };
    assert_eq!(
      with_url.resolve(env).unwrap().pg.get_options(),
      Some("-c work_mem=1MB")
    );
  }

  #[test]
  fn explicit_application_name_wins_over_the_url_and_pgappname() {
    let env = |key: &str| (key == "PGAPPNAME").then(|| "from-env".to_owned());
    let resolve = |connection_string: &str, application_name: Option<&str>| {
      ConnectOptions {
        connection_string: Some(connection_string.into()),
        application_name: application_name.map(str::to_owned),
        ..Default::default()
      }
      .resolve(env)
      .unwrap()
      .pg
      .get_application_name()
      .map(str::to_owned)
    };
    let url = "postgres://u@h/d?application_name=from-url";
    assert_eq!(resolve(url, Some("explicit")).as_deref(), Some("explicit"));
    assert_eq!(resolve(url, None).as_deref(), Some("from-url"));
    assert_eq!(
      resolve("postgres://u@h/d", None).as_deref(),
      Some("from-env")
    );
    let plain = ConnectOptions::default().resolve(no_env).unwrap();
    assert_eq!(
      plain.pg.get_application_name(),
      Some(DEFAULT_APPLICATION_NAME)
    );
  }

  #[test]
  fn the_default_user_is_the_os_user_not_the_user_variable() {
    let env = |key: &str| (key == "USER").then(|| "from-user-variable".to_owned());
    let resolved = ConnectOptions::default()
      .resolve_with(env, || Some("os-account".to_owned()))
      .unwrap();
    assert_eq!(resolved.pg.get_user(), Some("os-account"));
    assert_eq!(resolved.pg.get_dbname(), Some("os-account"));
    let pguser = |key: &str| (key == "PGUSER").then(|| "pg-user".to_owned());
    let resolved = ConnectOptions::default()
      .resolve_with(pguser, || Some("os-account".to_owned()))
      .unwrap();
    assert_eq!(resolved.pg.get_user(), Some("pg-user"));
    // The real lookup answers with the account of this process.
    assert!(os_user().is_some_and(|name| !name.is_empty()));
  }

  #[test]
  fn several_hosts_and_target_session_attrs() {
    let options = ConnectOptions {
      connection_string: Some(
        "postgresql://u@h1:5432,h2:5433/d?target_session_attrs=read-write".into(),
      ),
      ..Default::default()
    };
    let resolved = options.resolve(no_env).unwrap();
    assert_eq!(resolved.pg.get_hosts().len(), 2);
    assert_eq!(resolved.pg.get_ports(), &[5432, 5433]);
  }
}
