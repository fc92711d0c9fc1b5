//! Every SQL statement this package runs, and nothing else.
//!
//! `Queries::new(schema, prefix)` validates and quotes the identifiers once and
//! renders the DDL, the upgrade script and each named statement. The native
//! pool prepares exactly these strings (so `prepare_cached` always hits) and
//! executor mode receives the same strings through
//! `createPostgresProfileStoreArtifacts()`, so the two modes cannot drift.
//!
//! Conventions every statement follows:
//! - every parameter is sent as text (or NULL) and cast in SQL (`$1::integer`),
//!   so one calling convention serves tokio-postgres and any JS executor; JSON
//!   goes through `$1::text::jsonb`, because postgres.js JSON-encodes (again)
//!   any parameter the server reports as jsonb; timestamps go through
//!   `::text::timestamptz`, because postgres.js passes a timestamptz
//!   parameter through `new Date()` (losing microseconds and every year that
//!   Date cannot hold);
//! - result columns are `text`, `integer` or `boolean` only; JSON leaves the
//!   server as `::text`, so node-postgres and postgres.js hand back the same
//!   values the native decoder does.

use std::collections::BTreeMap;

use crate::error::StoreError;

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// The largest revision: every revision column is a PostgreSQL `integer`.
/// A save of a profile at this revision writes nothing and returns no row
/// (the caller reports it; see `render_save`). Exported to JS, whose input
/// checks use the same bound.
pub const MAX_REVISION: i32 = i32::MAX;

/// Top-level table/sequence/index suffixes appended to `tablePrefix`.
const PROFILES: &str = "profiles";
const AUDIT: &str = "profile_audit";
const DOMAIN_INDEX: &str = "domain_index";
const SUFFIXES: [&str; 15] = [
  PROFILES,
  AUDIT,
  DOMAIN_INDEX,
  "domain_index_seq",
  "profiles_pkey",
  "profiles_user_idx",
  "profile_audit_pkey",
  "domain_index_pkey",
  "domain_index_user_idx",
  DOMAIN_INDEX_LIST,
  "delete_profile",
  AUDIT_RECORDED_INDEX,
  ERASE_FUNCTION,
  DELETE_USER_FUNCTION,
  AUDIT_ERASED_INDEX,
];
/// The index that lists a user's profiles in order; it replaced 0.3.0's
/// `domain_index_user_idx` (see `render_list_index`).
const DOMAIN_INDEX_LIST: &str = "domain_index_list_idx";

/// The audit log by time: `loadProfile({ asOf })` and `listAuditEntries({
/// since, until })` (see `render_history_schema`).
const AUDIT_RECORDED_INDEX: &str = "audit_recorded_idx";
/// eraseFromHistory and deleteProfilesByUserId (see `render_history_schema`).
const ERASE_FUNCTION: &str = "erase_path";
/// The erasures of a profile, for a merge to see what was erased since its
/// base: a partial index, empty but for erasure rows.
const AUDIT_ERASED_INDEX: &str = "audit_erased_idx";
const DELETE_USER_FUNCTION: &str = "delete_user_profiles";

/// Declares `Statement`, its variants with their JS names, `ALL` and `name()`
/// from one list.
macro_rules! statements {
  ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
    /// The statements the repository runs. `name()` is the key of
    /// `artifacts.queries` and `artifacts.columns` on the JS side, and the
    /// name the JS layer runs a statement by.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Statement {
      $($(#[$doc])* $variant,)*
    }

    impl Statement {
      /// Every statement, in declaration order.
      pub const ALL: &'static [Statement] = &[$(Self::$variant,)*];

      /// The statement's name: the key JS knows it by.
      pub fn name(self) -> &'static str {
        match self {
          $(Self::$variant => $name,)*
        }
      }
    }
  };
}

statements! {
  LoadProfile = "loadProfile",
  LoadProfiles = "loadProfiles",
  ProfileExists = "profileExists",
  LoadProfileByUserId = "loadProfileByUserId",
  FindProfilesByUserId = "findProfilesByUserId",
  FindProfilesByUserIds = "findProfilesByUserIds",
  ListRevisionNumbers = "listRevisionNumbers",
  SaveProfile = "saveProfile",
  SaveProfiles = "saveProfiles",
  DeleteProfile = "deleteProfile",
  ListAuditEntries = "listAuditEntries",
  LoadProfileRevision = "loadProfileRevision",
  WriteCurrentProfile = "writeCurrentProfile",
  WriteProfileRevision = "writeProfileRevision",
  ReadUserProfileIndex = "readUserProfileIndex",
  WriteUserProfileIndex = "writeUserProfileIndex",
  ServerInfo = "serverInfo",
  CheckSchema = "checkSchema",
  PruneAuditEntries = "pruneAuditEntries",
  PruneProfileAuditEntries = "pruneProfileAuditEntries",
  // History (lib/history.js)
  LoadRevisionPair = "loadRevisionPair",
  LoadProfileAsOf = "loadProfileAsOf",
  RevertProfile = "revertProfile",
  LoadMergeBase = "loadMergeBase",
  ListAuditSnapshots = "listAuditSnapshots",
  EraseFromHistory = "eraseFromHistory",
  DeleteProfilesByUserId = "deleteProfilesByUserId",
  WalPosition = "walPosition",
}

impl Statement {
  /// The statement named `name`, if there is one.
  pub fn from_name(name: &str) -> Option<Self> {
    Self::ALL
      .iter()
      .copied()
      .find(|statement| statement.name() == name)
  }

  /// The columns the statement returns, in order: what `lib/` (through
  /// `artifacts.columns`) and `coalesced.rs` read by name, never by
  /// position. `tests/store.rs` prepares every statement and checks its
  /// columns against these, so a renamed column fails one test, not a
  /// user's call.
  pub fn columns(self) -> &'static [&'static str] {
    match self {
      Self::LoadProfile => &["document"],
      Self::LoadProfiles => &["profile_id", "document"],
      Self::ProfileExists => &["exists"],
      Self::LoadProfileByUserId => &["document"],
      Self::FindProfilesByUserId => &["profile_id"],
      Self::FindProfilesByUserIds => &["user_id", "profile_id"],
      Self::ListRevisionNumbers => &["revision"],
      Self::SaveProfile => &["profile_id", "revision"],
      Self::SaveProfiles => &["profile_id", "revision"],
      Self::DeleteProfile => &["deleted"],
      Self::ListAuditEntries => &["entry", "revision"],
      Self::LoadProfileRevision => &["document"],
      Self::WriteCurrentProfile => &[],
      Self::WriteProfileRevision => &["written"],
      Self::ReadUserProfileIndex => &["record"],
      Self::WriteUserProfileIndex => &["written"],
      Self::ServerInfo => &["version_num", "version"],
      Self::CheckSchema => &["key", "exists", "missing_columns"],
      Self::PruneAuditEntries => PRUNE_COLUMNS,
      Self::PruneProfileAuditEntries => PRUNE_COLUMNS,
      Self::LoadRevisionPair => &["revision", "document"],
      Self::LoadProfileAsOf => &["document", "revision"],
      Self::RevertProfile => &["profile_id", "revision", "document"],
      Self::LoadMergeBase => &["base", "document", "revision", "erased_paths"],
      Self::ListAuditSnapshots => &["revision", "recorded_at", "context", "document"],
      Self::EraseFromHistory => &["erased_revision", "erased_snapshots", "erased_from_current"],
      Self::DeleteProfilesByUserId => &["profile_ids", "audit_rows"],
      Self::WalPosition => &["in_recovery", "lsn"],
    }
  }

  /// What running the statement does to the data (`Effect`). Every
  /// statement declares one: a new statement cannot be routed by default.
  pub fn effect(self) -> Effect {
    match self {
      Self::LoadProfile
      | Self::LoadProfiles
      | Self::ProfileExists
      | Self::LoadProfileByUserId
      | Self::FindProfilesByUserId
      | Self::FindProfilesByUserIds
      | Self::ListRevisionNumbers
      | Self::ListAuditEntries
      | Self::LoadProfileRevision
      | Self::ReadUserProfileIndex
      | Self::LoadRevisionPair
      | Self::LoadProfileAsOf
      | Self::ListAuditSnapshots => Effect::Read,
      Self::ServerInfo | Self::CheckSchema | Self::WalPosition | Self::LoadMergeBase => {
        Effect::PrimaryRead
      }
      Self::WriteProfileRevision
      | Self::WriteUserProfileIndex
      | Self::PruneAuditEntries
      | Self::PruneProfileAuditEntries => Effect::KeepsCurrent,
      Self::SaveProfile
      | Self::SaveProfiles
      | Self::DeleteProfile
      | Self::WriteCurrentProfile
      | Self::RevertProfile
      | Self::EraseFromHistory
      | Self::DeleteProfilesByUserId => Effect::Write,
    }
  }

  /// Whether the statement only reads, so that a read replica may run it.
  pub fn is_read_only(self) -> bool {
    self.effect() == Effect::Read
  }
}

/// What a statement does to the data: where lib/replicas.js may run it and
/// what its loads must see afterwards (through the addon's
/// `statementEffects()`, by `name()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
  /// Reads only: a read replica may run it.
  Read,
  /// Changes nothing, but runs on the primary: administration, the WAL
  /// position itself, and loadMergeBase, which a merging save runs with it.
  PrimaryRead,
  /// Writes, leaving every current document as it was (the audit log, the
  /// user index): loads need not see it.
  KeepsCurrent,
  /// Writes current documents.
  Write,
}

impl Effect {
  /// The name JS knows the effect by.
  pub fn name(self) -> &'static str {
    match self {
      Self::Read => "read",
      Self::PrimaryRead => "primaryRead",
      Self::KeepsCurrent => "keepsCurrent",
      Self::Write => "write",
    }
  }
}

/// What one prune batch returns (see `render_prune`).
const PRUNE_COLUMNS: &[&str] = &[
  "removed_rows",
  "pruned_profiles",
  "pruned_first_profile",
  "next_profile_id",
];

/// Where `column` is in `statement`'s rows (`Statement::columns`). Every
/// pair the crate reads is checked by the unit tests of this module.
pub fn column_index(statement: Statement, column: &str) -> usize {
  statement
    .columns()
    .iter()
    .position(|c| *c == column)
    .unwrap_or_else(|| panic!("{} returns no column {column}", statement.name()))
}

/// Columns each table must have; `checkSchema` reports the ones missing.
const PROFILE_COLUMNS: [&str; 10] = [
  "profile_id",
  "user_id",
  "tenant_id",
  "revision",
  "document",
  "created_at",
  "saved_at",
  "save_previous_revision",
  "save_changed_paths",
  "save_source_count_delta",
];
const AUDIT_COLUMNS: [&str; 15] = [
  "profile_id",
  "revision",
  "previous_revision",
  "user_id",
  "tenant_id",
  "source_count",
  "source_count_delta",
  "changed_top_level_paths",
  "pson_version",
  "updated_at",
  "recorded_at",
  "context",
  "document",
  // History (render_history_schema)
  "reverted_from",
  "erased_path",
];
const INDEX_COLUMNS: [&str; 7] = [
  "user_id",
  "profile_id",
  "tenant_id",
  "active_domains",
  "position",
  "latest_seq",
  "updated_at",
];

/// Fully qualified, quoted table names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
  pub profiles: String,
  pub profile_audit: String,
  pub domain_index: String,
}

/// The table names of the 0.2.2 deployment that `upgrade_sql` copies from
/// (0.2.2's `currentProfilesTable`, `profileRevisionsTable` and
/// `userIndexTable` options), in the same schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyTables {
  pub current_profiles: String,
  pub profile_revisions: String,
  pub user_index: String,
}

impl Default for LegacyTables {
  /// 0.2.2's defaults.
  fn default() -> Self {
    Self {
      current_profiles: "pson_profiles_current".to_owned(),
      profile_revisions: "pson_profile_revisions".to_owned(),
      user_index: "pson_user_profile_index".to_owned(),
    }
  }
}

/// The rendered SQL of one repository configuration.
#[derive(Debug, Clone)]
pub struct Queries {
  pub schema_sql: String,
  pub upgrade_sql: String,
  pub tables: Tables,
  statements: BTreeMap<&'static str, String>,
}

impl Queries {
  /// Validates `schema` and `table_prefix` and renders every statement, with
  /// 0.2.2's default table names for the upgrade.
  pub fn new(schema: &str, table_prefix: &str) -> Result<Self, StoreError> {
    Self::with_legacy_tables(schema, table_prefix, &LegacyTables::default())
  }

  /// As `new`, with the upgrade reading the 0.2.2 tables named in `legacy`.
  pub fn with_legacy_tables(
    schema: &str,
    table_prefix: &str,
    legacy: &LegacyTables,
  ) -> Result<Self, StoreError> {
    check_identifier("schema", schema, schema)?;
    check_legacy_table("currentProfilesTable", &legacy.current_profiles)?;
    check_legacy_table("profileRevisionsTable", &legacy.profile_revisions)?;
    check_legacy_table("userIndexTable", &legacy.user_index)?;
    for suffix in SUFFIXES {
      check_identifier(
        "tablePrefix",
        table_prefix,
        &format!("{table_prefix}{suffix}"),
      )?;
    }
    let names = Names::new(schema, table_prefix, legacy);
    let statements = Statement::ALL
      .iter()
      .copied()
      .map(|statement| (statement.name(), render_statement(statement, &names)))
      .collect();
    Ok(Self {
      schema_sql: [
        render_schema(&names),
        render_list_index(&names),
        render_compression(&names),
        render_history_schema(&names),
      ]
      .concat(),
      upgrade_sql: render_upgrade(&names),
      tables: Tables {
        profiles: names.profiles.clone(),
        profile_audit: names.audit.clone(),
        domain_index: names.index.clone(),
      },
      statements,
    })
  }

  /// The SQL text of a named statement.
  pub fn statement(&self, name: &str) -> Result<&str, StoreError> {
    self
      .statements
      .get(name)
      .map(String::as_str)
      .ok_or_else(|| StoreError::validation("query", format!("unknown statement '{name}'")))
  }

  /// The columns `name` returns, in order (`Statement::columns`).
  pub fn columns(&self, name: &str) -> Option<&'static [&'static str]> {
    Statement::from_name(name).map(Statement::columns)
  }

  /// All statements by name, in name order.
  pub fn statements(&self) -> impl Iterator<Item = (&'static str, &str)> {
    self
      .statements
      .iter()
      .map(|(name, sql)| (*name, sql.as_str()))
  }
}

/// Rejects anything but a plain identifier, and names that PostgreSQL would
/// silently truncate (which could make two prefixes share a table).
fn check_identifier(field: &'static str, value: &str, full_name: &str) -> Result<(), StoreError> {
  let mut chars = value.chars();
  let plain = match chars.next() {
    Some(first) => {
      (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }
    None => false,
  };
  if !plain {
    return Err(StoreError::validation(
      field,
      format!("{field} must match [A-Za-z_][A-Za-z0-9_]*"),
    ));
  }
  if full_name.len() > MAX_IDENTIFIER_BYTES {
    return Err(StoreError::validation(
      field,
      format!("{field} makes the name '{full_name}' longer than {MAX_IDENTIFIER_BYTES} bytes"),
    ));
  }
  Ok(())
}

/// 0.2.2 quoted its table names and checked nothing, so any name PostgreSQL
/// can hold was possible. Longer names were truncated by the server (to the
/// same table every time), so a name over 63 bytes is refused with the
/// truncated name to use instead.
fn check_legacy_table(field: &'static str, name: &str) -> Result<(), StoreError> {
  if name.is_empty() || name.contains('\0') {
    return Err(StoreError::validation(
      field,
      format!("{field} must be a non-empty table name without \\u0000"),
    ));
  }
  if name.len() > MAX_IDENTIFIER_BYTES {
    let mut end = MAX_IDENTIFIER_BYTES;
    while !name.is_char_boundary(end) {
      end -= 1;
    }
    return Err(StoreError::validation(
      field,
      format!(
        "{field} is longer than {MAX_IDENTIFIER_BYTES} bytes; PostgreSQL truncated it when 0.2.2 created the table: pass '{}'",
        &name[..end]
      ),
    ));
  }
  Ok(())
}

/// Double-quotes an identifier (doubling embedded quotes, as libpq does).
fn quote(identifier: &str) -> String {
  format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Quoted names of every object, rendered once.
struct Names {
  schema: String,
  prefix: String,
  profiles: String,
  audit: String,
  index: String,
  index_seq: String,
  /// `regclass` literal of the sequence, for `nextval()`.
  index_seq_literal: String,
  delete_function: String,
  legacy_current: String,
  legacy_revisions: String,
  legacy_user_index: String,
}

impl Names {
  fn new(schema: &str, prefix: &str, legacy: &LegacyTables) -> Self {
    let qualified = |table: &str| format!("{}.{}", quote(schema), quote(table));
    let index_seq = qualified(&format!("{prefix}domain_index_seq"));
    Self {
      schema: quote(schema),
      prefix: prefix.to_owned(),
      profiles: qualified(&format!("{prefix}{PROFILES}")),
      audit: qualified(&format!("{prefix}{AUDIT}")),
      index: qualified(&format!("{prefix}{DOMAIN_INDEX}")),
      index_seq_literal: format!("'{}'", index_seq.replace('\'', "''")),
      delete_function: qualified(&format!("{prefix}delete_profile")),
      index_seq,
      legacy_current: qualified(&legacy.current_profiles),
      legacy_revisions: qualified(&legacy.profile_revisions),
      legacy_user_index: qualified(&legacy.user_index),
    }
  }

  fn object(&self, suffix: &str) -> String {
    quote(&format!("{}{suffix}", self.prefix))
  }
}

/// `metadata.source_count` when it is a JSON number, else NULL.
fn source_count(document: &str) -> String {
  format!(
    "(case when jsonb_typeof({document} #> '{{metadata,source_count}}') = 'number' \
     then ({document} #>> '{{metadata,source_count}}')::numeric end)"
  )
}

/// `domains.active` as `text[]` (empty when absent or not an array).
fn active_domains(document: &str) -> String {
  format!(
    "array(select jsonb_array_elements_text(case when jsonb_typeof({document} #> '{{domains,active}}') = 'array' \
     then {document} #> '{{domains,active}}' else '[]'::jsonb end))"
  )
}

/// A timestamptz rendered the way JavaScript's `Date#toISOString` does.
fn iso(timestamp: &str) -> String {
  format!("to_char({timestamp} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
}

/// A timestamptz as exact ISO-8601 text, the way `Date#toISOString` writes
/// it: UTC, milliseconds (microseconds when the value has them, so nothing
/// is lost), and years outside 0000..9999 expanded to a sign and six digits.
/// Astronomical years: 1 BC is 0000, as in ISO-8601 and ECMAScript.
fn iso_instant(timestamp: &str) -> String {
  let utc = format!("({timestamp} at time zone 'UTC')");
  let year = format!(
    "(extract(year from {utc})::integer + case when extract(year from {utc}) < 0 then 1 else 0 end)"
  );
  format!(
    "(case when {year} between 0 and 9999 then lpad({year}::text, 4, '0') \
     when {year} > 9999 then '+' || lpad({year}::text, 6, '0') else '-' || lpad((-{year})::text, 6, '0') end \
     || to_char({utc}, '-MM-DD\"T\"HH24:MI:SS.') \
     || case when to_char({utc}, 'US') like '%000' then to_char({utc}, 'MS') else to_char({utc}, 'US') end || 'Z')"
  )
}

/// The audit row's `changed_top_level_paths`: the top-level keys whose values
/// differ between the previous and the new document, sorted. `metadata` is
/// always listed, because the revision in it always moves. `old` is `'{}'`
/// for a first revision, so every key of `new` counts as changed. One rule for
/// every path that writes audit rows (save, writeProfileRevision, upgrade).
fn changed_paths(old: &str, new: &str) -> String {
  format!(
    "array(select k from (select jsonb_object_keys({old}) union select jsonb_object_keys({new}) \
     union select 'metadata') keys(k) where k = 'metadata' or {old} -> k is distinct from {new} -> k order by k)"
  )
}

fn render_schema(n: &Names) -> String {
  let Names {
    schema,
    profiles,
    audit,
    index,
    index_seq,
    ..
  } = n;
  let profiles_pkey = n.object("profiles_pkey");
  let profiles_user_idx = n.object("profiles_user_idx");
  let audit_pkey = n.object("profile_audit_pkey");
  let index_pkey = n.object("domain_index_pkey");
  let delete_function = &n.delete_function;
  let schema_literal = format!("'{}'", schema.replace('\'', "''"));
  format!(
    r#"-- Guarded, because CREATE SCHEMA IF NOT EXISTS still needs CREATE on the
-- database, which a role owning only its schema lacks.
do $create_schema$
begin
  if to_regnamespace({schema_literal}) is null then
    create schema if not exists {schema};
  end if;
end
$create_schema$;

create table if not exists {profiles} (
  profile_id text not null,
  user_id text not null,
  tenant_id text,
  revision integer not null,
  document jsonb not null,
  created_at timestamptz not null default now(),
  saved_at timestamptz not null default now(),
  -- Carried from the save upsert (which alone sees the previous row) to the audit insert.
  save_previous_revision integer,
  save_changed_paths text[] not null default '{{}}',
  save_source_count_delta numeric,
  constraint {profiles_pkey} primary key (profile_id)
)
-- Every save rewrites the row: free space on the page keeps the update HOT
-- (no index writes).
with (fillfactor = 80);
create index if not exists {profiles_user_idx} on {profiles} (user_id);

create table if not exists {audit} (
  profile_id text not null,
  revision integer not null,
  previous_revision integer,
  user_id text not null,
  tenant_id text,
  source_count numeric,
  source_count_delta numeric,
  changed_top_level_paths text[] not null default '{{}}',
  pson_version text,
  updated_at text,
  recorded_at timestamptz not null default now(),
  context jsonb not null default '{{}}',
  document jsonb not null,
  constraint {audit_pkey} primary key (profile_id, revision)
);

create sequence if not exists {index_seq};

-- A profile is indexed under one user at a time: keyed by profile_id, a save
-- that moves it to another user is a plain upsert under the row lock.
create table if not exists {index} (
  profile_id text not null,
  user_id text not null,
  tenant_id text,
  active_domains text[] not null default '{{}}',
  position bigint not null,
  latest_seq bigint not null,
  updated_at timestamptz not null default now(),
  constraint {index_pkey} primary key (profile_id)
)
with (fillfactor = 80);

-- deleteProfile. A function because its statements must not share one
-- snapshot: the first waits for (and then removes) a save holding the row
-- lock, and the next ones then see that save's audit and index rows.
create or replace function {delete_function}(target_profile_id text) returns boolean
language plpgsql as $delete_profile$
declare
  gone_profile bigint;
  gone_audit bigint;
  gone_index bigint;
begin
  delete from {profiles} where profile_id = target_profile_id;
  get diagnostics gone_profile = row_count;
  delete from {audit} where profile_id = target_profile_id;
  get diagnostics gone_audit = row_count;
  delete from {index} where profile_id = target_profile_id;
  get diagnostics gone_index = row_count;
  return gone_profile + gone_audit + gone_index > 0;
end
$delete_profile$;
"#
  )
}

/// The index behind a user's list of profiles (`findProfilesByUserId` and
/// the other readers of `user_id, position, profile_id`), in list order, so
/// no read sorts. 0.3.0 indexed `(user_id, position)` only, so every list was
/// sorted again (`__test__/plans.test.mjs`); its index is dropped once the new
/// one is valid, since the new one serves every read the old one did. On a
/// large deployment, build the new index first with `create index
/// concurrently` under the same name: this script then only drops the old one
/// instead of holding up writes of the index table while it builds.
fn render_list_index(n: &Names) -> String {
  let index = &n.index;
  let list_index = n.object(DOMAIN_INDEX_LIST);
  let old_index = format!("{}.{}", n.schema, n.object("domain_index_user_idx"));
  let list_index_literal = format!(
    "'{}'",
    format!("{}.{list_index}", n.schema).replace('\'', "''")
  );
  format!(
    r#"
create index if not exists {list_index} on {index} (user_id, position, profile_id);
do $list_index$
begin
  if exists (select 1 from pg_index where indexrelid = to_regclass({list_index_literal}) and not indisvalid) then
    raise exception 'index % is invalid (a create index concurrently that failed?); remove it and run this script again',
      {list_index_literal};
  end if;
  drop index if exists {old_index};
end
$list_index$;
"#
  )
}

/// lz4 TOAST compression for the documents, where the server has it
/// (PostgreSQL 14+ built with lz4): measured on 2 cores with ~20 KB
/// documents, an insert compresses in ~0.4 ms less than with pglz (a save
/// compresses twice: profile row and audit row) and a read decompresses in
/// half the time; lz4 keeps ~8% more bytes than pglz. Documents under ~2 KB
/// are not compressed by either (PostgreSQL's TOAST threshold). Only columns
/// still at the server default change: a method set by hand is kept. Values
/// already stored keep their compression until they are written again.
fn render_compression(n: &Names) -> String {
  let columns = [(&n.profiles, "document"), (&n.audit, "document")];
  let mut body = String::new();
  for (table, column) in columns {
    let literal = format!("'{}'", table.replace('\'', "''"));
    body.push_str(&format!(
      "    if exists (select 1 from pg_attribute where attrelid = {literal}::regclass and attname = '{column}' \
       and attcompression = '') then\n      alter table {table} alter column {column} set compression lz4;\n    end if;\n"
    ));
  }
  format!(
    r#"
do $compression$
begin
  if exists (select 1 from pg_settings where name = 'default_toast_compression' and 'lz4' = any (enumvals)) then
{body}  end if;
end
$compression$;
"#
  )
}

fn render_upgrade(n: &Names) -> String {
  let Names {
    profiles,
    audit,
    index,
    legacy_current,
    legacy_revisions,
    legacy_user_index,
    ..
  } = n;
  let seq = &n.index_seq_literal;
  let lit = |name: &str| format!("'{}'", name.replace('\'', "''"));
  let (current_lit, revisions_lit, user_index_lit) = (
    lit(legacy_current),
    lit(legacy_revisions),
    lit(legacy_user_index),
  );
  let domains = active_domains("p.document");
  let source_count_doc = source_count("r.profile_document");
  let source_count_prev = source_count("r.previous_document");
  let changed = changed_paths(
    "coalesce(r.previous_document, '{}'::jsonb)",
    "r.profile_document",
  );
  let repaired_changed = changed_paths("coalesce(r.previous_document, '{}'::jsonb)", "a.document");
  let body = format!(
    r#"
begin
  if to_regclass({current_lit}) is not null then
    insert into {profiles} (profile_id, user_id, tenant_id, revision, document, created_at, saved_at)
    select c.profile_id, c.user_id, c.profile_document ->> 'tenant_id', c.profile_revision,
           c.profile_document, c.updated_at, c.updated_at
    from {legacy_current} c
    on conflict (profile_id) do nothing;
  end if;

  if to_regclass({revisions_lit}) is not null then
    insert into {audit} (profile_id, revision, previous_revision, user_id, tenant_id, source_count,
                         source_count_delta, changed_top_level_paths, pson_version, updated_at,
                         recorded_at, context, document)
    select r.profile_id, r.revision, r.previous_revision,
           coalesce(r.profile_document ->> 'user_id', ''), r.profile_document ->> 'tenant_id',
           {source_count_doc}, {source_count_doc} - coalesce({source_count_prev}, 0),
           {changed},
           r.profile_document ->> 'pson_version', r.profile_document #>> '{{metadata,updated_at}}',
           r.updated_at, '{{"source": "upgrade-0.2.2"}}'::jsonb, r.profile_document
    from (
      select rev.*,
             lag(rev.revision) over w as previous_revision,
             lag(rev.profile_document) over w as previous_document
      from {legacy_revisions} rev
      window w as (partition by rev.profile_id order by rev.revision)
    ) r
    on conflict (profile_id, revision) do nothing;
  end if;

  if to_regclass({user_index_lit}) is not null then
    insert into {index} (user_id, profile_id, tenant_id, active_domains, position, latest_seq, updated_at)
    select u.user_id, e.profile_id, p.tenant_id, coalesce({domains}, '{{}}'), e.ordinal,
           case when e.profile_id = u.latest_profile_id then nextval({seq}) else 0 end, u.updated_at
    from {legacy_user_index} u
    cross join lateral jsonb_array_elements_text(
      case when jsonb_typeof(u.profile_ids) = 'array' then u.profile_ids else '[]'::jsonb end
    ) with ordinality as e(profile_id, ordinal)
    left join {profiles} p on p.profile_id = e.profile_id
    on conflict (profile_id) do nothing;
  end if;

  -- 0.3.0's writeProfileRevision left the audit fields of its rows empty (no
  -- changed path at all, which no other path writes): fill them in as a save
  -- would have, against the nearest earlier revision.
  update {audit} a set previous_revision = r.previous_revision,
         source_count_delta = a.source_count - coalesce({source_count_prev}, 0),
         changed_top_level_paths = {repaired_changed}
  from (
    select rev.profile_id, rev.revision,
           lag(rev.revision) over w as previous_revision,
           lag(rev.document) over w as previous_document
    from {audit} rev
    where rev.profile_id in (select e.profile_id from {audit} e where e.changed_top_level_paths = '{{}}')
    window w as (partition by rev.profile_id order by rev.revision)
  ) r
  where a.profile_id = r.profile_id and a.revision = r.revision and a.changed_top_level_paths = '{{}}';
end
"#
  );
  // The 0.2.2 table names are the caller's text: choose a dollar-quote tag
  // that none of them (nor anything else in the body) contains.
  let mut tag = "$upgrade$".to_owned();
  while body.contains(&tag) {
    tag.insert(tag.len() - 1, '_');
  }
  format!(
    "-- Copies a 0.2.2 deployment into the 0.3 tables. Idempotent; the old tables are kept.\ndo {tag}{body}{tag};\n"
  )
}

fn render_statement(statement: Statement, n: &Names) -> String {
  let Names {
    profiles,
    audit,
    index,
    ..
  } = n;
  let seq = &n.index_seq_literal;
  match statement {
    Statement::LoadProfile => format!("select document::text as document from {profiles} where profile_id = $1::text"),
    // $1: a text[] literal (`{"a","b"}`), which costs the server less to
    // read than a JSON array.
    Statement::LoadProfiles => format!(
      "select profile_id, document::text as document from {profiles} \
       where profile_id = any ($1::text::text[])"
    ),
    Statement::ProfileExists => {
      format!("select exists (select 1 from {profiles} where profile_id = $1::text) as exists")
    }
    Statement::LoadProfileByUserId => format!(
      "select p.document::text as document from {index} d join {profiles} p on p.profile_id = d.profile_id \
       where d.user_id = $1::text order by d.latest_seq desc, d.position desc limit 1"
    ),
    Statement::FindProfilesByUserId => format!(
      "select profile_id from {index} where user_id = $1::text order by position, profile_id"
    ),
    // $1: a text[] literal of user ids; rows grouped by user, each user's in
    // the order of findProfilesByUserId.
    Statement::FindProfilesByUserIds => format!(
      "select user_id, profile_id from {index} where user_id = any ($1::text::text[]) \
       order by user_id, position, profile_id"
    ),
    Statement::ListRevisionNumbers => {
      format!("select revision from {audit} where profile_id = $1::text order by revision")
    }
    Statement::SaveProfile => render_save(n, SaveInput::One),
    Statement::SaveProfiles => render_save(n, SaveInput::Batch),
    Statement::DeleteProfile => format!("select {}($1::text) as deleted", n.delete_function),
    // `revision <= coalesce(cursor - 1, MAX)` rather than `cursor is null or
    // revision < cursor`: only the former bounds the index scan in the generic
    // plan a prepared statement ends up with (a page deep in a long history
    // read every newer entry first: __test__/plans.test.mjs).
    Statement::ListAuditEntries => format!(
      "select json_build_object('profile_id', profile_id, 'user_id', user_id, 'tenant_id', tenant_id, \
       'revision', revision, 'previous_revision', previous_revision, 'source_count', source_count, \
       'source_count_delta', source_count_delta, 'changed_top_level_paths', changed_top_level_paths, \
       'pson_version', pson_version, 'updated_at', updated_at, 'recorded_at', {recorded_at}, \
       'context', context, 'reverted_from', reverted_from, 'erased_path', erased_path)::text as entry, revision \
       from {audit} a cross join ({window}) w \
       where a.profile_id = $1::text and a.revision <= least(coalesce($2::integer - 1, {MAX_REVISION}), w.high) \
       and a.revision >= w.low and a.recorded_at >= coalesce($4::text::timestamptz, '-infinity') \
       and a.recorded_at < coalesce($5::text::timestamptz, 'infinity') \
       order by a.revision desc limit $3::integer",
      recorded_at = iso("recorded_at"),
      window = audit_window(n, "$1::text", "$4::text", "$5::text"),
    ),
    Statement::LoadProfileRevision => format!(
      "select document::text as document from {audit} where profile_id = $1::text and revision = $2::integer"
    ),
    Statement::WriteCurrentProfile => format!(
      "insert into {profiles} as cur (profile_id, user_id, tenant_id, revision, document) \
       select d ->> 'profile_id', d ->> 'user_id', d ->> 'tenant_id', (d #>> '{{metadata,revision}}')::integer, d \
       from (select $1::text::jsonb as d) input \
       on conflict (profile_id) do update set user_id = excluded.user_id, tenant_id = excluded.tenant_id, \
       revision = excluded.revision, document = excluded.document, saved_at = now()"
    ),
    Statement::WriteProfileRevision => render_write_revision(n),
    // Two reads of one user's rows, each in its own order: the list in the
    // list index's order, and the latest as a top-1 by latest_seq (no index
    // on latest_seq: every save moves it, and an index would make each index
    // row update non-HOT). One aggregate with both orders made PostgreSQL 16+
    // sort all of the user's rows before aggregating (presorted aggregates).
    Statement::ReadUserProfileIndex => format!(
      "select json_build_object('user_id', $1::text, 'latest_profile_id', latest.profile_id, \
       'profile_ids', list.profile_ids, 'updated_at', {updated_at})::text as record \
       from (select profile_id, updated_at from {index} where user_id = $1::text \
       order by latest_seq desc, position desc limit 1) latest, \
       (select array_agg(profile_id order by position, profile_id) as profile_ids \
       from {index} where user_id = $1::text) list",
      updated_at = iso_instant("latest.updated_at")
    ),
    // One lock order for every statement, as saves take it: profile rows,
    // then index rows, each by profile_id. `involved` is every profile this
    // write lists or unlists; `shared` locks their profile rows (a save of
    // one holds its row from before it writes any index row, so this write
    // waits for it before holding an index row itself), `locked` their
    // index rows, and only then are rows deleted and inserted, new ones in
    // profile_id order too (the scalar subqueries run first). Locked in the
    // caller's order, two lists in opposite orders deadlocked, and without
    // `shared` so did a save inserting a new index row (40P01:
    // __test__/concurrency.test.mjs; what is left is retried, see
    // lib/repository.js). `= any (...)` rather than `user_id = $1 or
    // profile_id in (...)`: the OR was planned as a scan of the whole table
    // (plans.test.mjs).
    Statement::WriteUserProfileIndex => format!(
      "with wanted as ( \
         select e.profile_id, e.ordinal from jsonb_array_elements_text($3::text::jsonb) with ordinality as e(profile_id, ordinal)), \
       involved as materialized ( \
         select array(select u.profile_id from {index} u where u.user_id = $1::text \
         union select w.profile_id from wanted w) as ids), \
       shared as materialized ( \
         select p.profile_id from {profiles} p where p.profile_id = any ((select ids from involved)::text[]) \
         order by p.profile_id for share), \
       locked as materialized ( \
         select d.profile_id from {index} d where d.profile_id = any ((select ids from involved)::text[]) \
         and (select count(*) from shared) >= 0 \
         order by d.profile_id for update), \
       removed as ( \
         delete from {index} d where d.user_id = $1::text and (select count(*) from locked) >= 0 \
         and not exists (select 1 from wanted w where w.profile_id = d.profile_id)), \
       written as ( \
         insert into {index} as cur (user_id, profile_id, tenant_id, active_domains, position, latest_seq, updated_at) \
         select $1::text, w.profile_id, p.tenant_id, coalesce({domains}, '{{}}'), w.ordinal, \
         case when w.profile_id = $2::text then nextval({seq}) else 0 end, $4::text::timestamptz \
         from wanted w left join {profiles} p on p.profile_id = w.profile_id \
         where (select count(*) from locked) >= 0 \
         order by w.profile_id \
         on conflict (profile_id) do update set user_id = excluded.user_id, position = excluded.position, \
         latest_seq = case when excluded.profile_id = $2::text then excluded.latest_seq else cur.latest_seq end, \
         updated_at = excluded.updated_at \
         returning 1) \
       select count(*)::integer as written from written",
      domains = active_domains("p.document")
    ),
    Statement::CheckSchema => render_check(n),
    Statement::PruneAuditEntries => render_prune(n, PruneScope::All),
    Statement::PruneProfileAuditEntries => render_prune(n, PruneScope::One),
    Statement::ServerInfo => "select current_setting('server_version_num')::integer as version_num, \
       current_setting('server_version') as version"
      .to_owned(),
    Statement::RevertProfile => render_save(n, SaveInput::Revert),
    Statement::LoadRevisionPair
    | Statement::LoadProfileAsOf
    | Statement::LoadMergeBase
    | Statement::ListAuditSnapshots
    | Statement::EraseFromHistory
    | Statement::DeleteProfilesByUserId => {
      render_history_statement(statement, n)
    }
    // Read replicas (lib/replicas.js): whether the server is a standby, and
    // its WAL position: on a primary the insert position (at or past the end
    // of every commit acknowledged so far), on a standby the replay position
    // (every commit before it is visible there). The branch not taken is not
    // run (pg_last_wal_replay_lsn is null on a primary,
    // pg_current_wal_insert_lsn fails on a standby).
    Statement::WalPosition => "select pg_is_in_recovery() as in_recovery, \
       (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_insert_lsn() end)::text as lsn"
      .to_owned(),
  }
}

/// writeProfileRevision (the 0.2.2 path): `$1` the document, `$2` the context
/// (jsonb text or NULL). Upserts the snapshot of `metadata.revision` with the
/// audit fields a save would give it, computed against the nearest earlier
/// revision in the log, and re-links the nearest later revision (if one was
/// written first) to this one, so `previous_revision` forms one chain
/// whichever path and order wrote the revisions.
fn render_write_revision(n: &Names) -> String {
  let audit = &n.audit;
  let sc_new = source_count("i.d");
  let sc_previous = source_count("p.document");
  let changed = changed_paths("coalesce(p.document, '{}'::jsonb)", "i.d");
  let relinked_changed = changed_paths("i.d", "a.document");
  format!(
    r#"with input as (
  select raw.d, raw.d ->> 'profile_id' as profile_id, (raw.d #>> '{{metadata,revision}}')::integer as revision,
         $2::text::jsonb as context
  from (select $1::text::jsonb as d) raw
),
-- Lateral, so that each lookup is one step along the primary key (a join
-- sorted the profile's revisions: __test__/plans.test.mjs).
previous as (
  select p.revision, p.document from input i cross join lateral (
    select a.revision, a.document from {audit} a where a.profile_id = i.profile_id and a.revision < i.revision
    order by a.revision desc limit 1) p
),
later as (
  select l.revision from input i cross join lateral (
    select a.revision from {audit} a where a.profile_id = i.profile_id and a.revision > i.revision
    order by a.revision limit 1) l
),
written as (
  insert into {audit} as cur (profile_id, revision, previous_revision, user_id, tenant_id, source_count,
                              source_count_delta, changed_top_level_paths, pson_version, updated_at, context, document)
  select i.profile_id, i.revision, p.revision, i.d ->> 'user_id', i.d ->> 'tenant_id', {sc_new},
         {sc_new} - coalesce({sc_previous}, 0), {changed}, i.d ->> 'pson_version',
         i.d #>> '{{metadata,updated_at}}', coalesce(i.context, '{{}}'::jsonb), i.d
  from input i left join previous p on true
  on conflict (profile_id, revision) do update set
    previous_revision = excluded.previous_revision, user_id = excluded.user_id, tenant_id = excluded.tenant_id,
    source_count = excluded.source_count, source_count_delta = excluded.source_count_delta,
    changed_top_level_paths = excluded.changed_top_level_paths, pson_version = excluded.pson_version,
    updated_at = excluded.updated_at, recorded_at = now(), context = excluded.context, document = excluded.document,
    reverted_from = null, erased_path = null
  returning 1
),
relinked as (
  update {audit} a set previous_revision = i.revision,
    source_count_delta = a.source_count - coalesce({sc_new}, 0),
    changed_top_level_paths = {relinked_changed}
  from input i join later l on true
  where a.profile_id = i.profile_id and a.revision = l.revision
)
select count(*)::integer as written from written"#
  )
}

/// One row per table: key, whether it exists, and the JSON array of missing columns.
fn render_check(n: &Names) -> String {
  let literal = |text: &str| format!("'{}'", text.replace('\'', "''"));
  let row = |key: &str, table: &str, columns: &[&str]| {
    let columns = columns
      .iter()
      .map(|c| literal(c))
      .collect::<Vec<_>>()
      .join(", ");
    format!(
      "({}, {}, array[{columns}]::text[])",
      literal(key),
      literal(table)
    )
  };
  format!(
    "select t.key, to_regclass(t.qualified) is not null as exists, \
     (select coalesce(json_agg(c order by c), '[]'::json) from unnest(t.columns) c \
      where not exists (select 1 from pg_attribute a where a.attrelid = to_regclass(t.qualified) \
      and a.attname = c and not a.attisdropped))::text as missing_columns \
     from (values {}, {}, {}) as t(key, qualified, columns)",
    row("profiles", &n.profiles, &PROFILE_COLUMNS),
    row("profileAudit", &n.audit, &AUDIT_COLUMNS),
    row("domainIndex", &n.index, &INDEX_COLUMNS)
  )
}

/// Which profiles one prune batch walks.
#[derive(Clone, Copy)]
enum PruneScope {
  /// `$1`: the first profile id to examine (`''` at the start); at most
  /// `$4` profiles from there, in profile_id order.
  All,
  /// `$1`: the one profile to prune.
  One,
}

/// One batch of `pruneAuditEntries` (`lib/retention.js` runs them until the
/// walk ends). `$2` keepLast (NULL: 1, the newest row), `$3` olderThan
/// (timestamptz text, NULL: any age), `$4` the batch size: the most rows it
/// removes and profiles it examines.
///
/// Per profile, everything below one revision goes: the lowest of its current
/// revision (the profile row's), its `keepLast`-th newest audit row, and (with
/// olderThan) its oldest row recorded since then. So the rows kept are always
/// the newest ones, contiguous, and the newest row and the current
/// revision's row are never removed. Rows another transaction holds locked
/// (a save or delete of that profile in flight) are skipped, never waited
/// for: the batch cannot block a save or be part of a deadlock.
///
/// Returns `removed_rows`, `pruned_profiles` (profiles that lost rows),
/// `pruned_first_profile` (whether the profile `$1` lost rows: a batch that
/// resumes in a profile must not count it twice) and `next_profile_id`: where the next batch starts (the profile it stopped in
/// when it removed a full batch, else the first profile it did not examine),
/// NULL when the walk is done.
fn render_prune(n: &Names, scope: PruneScope) -> String {
  let Names {
    profiles, audit, ..
  } = n;
  let (walk, next_when_not_full) = match scope {
    PruneScope::All => (
      format!(
        "select p.profile_id, p.revision from {profiles} p where p.profile_id >= $1::text \
         order by p.profile_id limit $4::integer"
      ),
      format!(
        "(select p.profile_id from {profiles} p where p.profile_id >= $1::text \
         order by p.profile_id offset $4::integer limit 1)"
      ),
    ),
    PruneScope::One => (
      format!("select p.profile_id, p.revision from {profiles} p where p.profile_id = $1::text"),
      "null::text".to_owned(),
    ),
  };
  format!(
    r#"with doomed as (
  select a.profile_id, a.revision
  from ({walk}) w
  -- The keepLast-th newest row (no row: the profile has no more than that).
  cross join lateral (
    select k.revision from {audit} k where k.profile_id = w.profile_id
    order by k.revision desc offset coalesce($2::integer, 1) - 1 limit 1
  ) newest
  -- With olderThan: the first row recorded since then among the oldest
  -- batch-size rows (a batch removes no more), else the row after those.
  left join lateral (
    select coalesce(
      (select min(f.revision) from (
         select o.revision, o.recorded_at from {audit} o where o.profile_id = w.profile_id
         order by o.revision limit $4::integer) f
       where f.recorded_at >= $3::text::timestamptz),
      (select o.revision from {audit} o where o.profile_id = w.profile_id
       order by o.revision offset $4::integer limit 1)) as revision
    where $3::text is not null
  ) young on true
  -- Each profile's rows in revision order, straight from the primary key;
  -- the profiles in walk order (the nested loop keeps it). A batch cut short
  -- resumes at the last profile it removed rows of, so an order that differed
  -- would only leave rows for the next prune, never remove one too many.
  cross join lateral (
    select a.profile_id, a.revision from {audit} a
    where a.profile_id = w.profile_id and a.revision < least(w.revision, newest.revision, young.revision)
    order by a.revision limit $4::integer
    for update skip locked
  ) a
  limit $4::integer
),
removed as (
  delete from {audit} a using doomed d where a.profile_id = d.profile_id and a.revision = d.revision
  returning a.profile_id
)
select (select count(*) from removed)::integer as removed_rows,
       (select count(distinct r.profile_id) from removed r)::integer as pruned_profiles,
       (select count(*) > 0 from removed r where r.profile_id = $1::text) as pruned_first_profile,
       case when (select count(*) from removed) >= $4::integer then (select max(r.profile_id) from removed r)
            else {next_when_not_full} end as next_profile_id"#
  )
}

// ---- History (lib/history.js) ----

/// The audit index by time (`AUDIT_RECORDED_INDEX`), without `revision`: a
/// covering index made the prune's scans of a profile's rows in revision
/// order read it and sort. `loadProfile({ asOf })`
/// reads the newest row recorded by an instant straight from it, and
/// `listAuditEntries({ since, until })` finds the revisions of a time window
/// in it. Built by `create index if not exists`, which holds up writes to the
/// audit table while it builds: on a large deployment, build it first with
/// `create index concurrently` under the same name.
///
/// The audit columns of history: `reverted_from` (the revision a
/// `revertProfile` restored) and `erased_path` (the JSON Pointer an
/// `eraseFromHistory` removed), NULL on every other row. Added to 0.3.0
/// tables only when missing, so running the script again takes no lock.
fn render_history_schema(n: &Names) -> String {
  let audit = &n.audit;
  let audit_literal = format!("'{}'", audit.replace('\'', "''"));
  let recorded_index = n.object(AUDIT_RECORDED_INDEX);
  let erased_index = n.object(AUDIT_ERASED_INDEX);
  let mut columns = String::new();
  for (column, kind) in [("reverted_from", "integer"), ("erased_path", "text")] {
    columns.push_str(&format!(
      "  if not exists (select 1 from pg_attribute where attrelid = {audit_literal}::regclass \
       and attname = '{column}' and not attisdropped) then\n    alter table {audit} add column {column} {kind};\n  end if;\n"
    ));
  }
  format!(
    r#"
do $history_columns$
begin
{columns}end
$history_columns$;
create index if not exists {recorded_index} on {audit} (profile_id, recorded_at);
create index if not exists {erased_index} on {audit} (profile_id, revision) where erased_path is not null;
{erase}{delete_user}"#,
    erase = render_erase_function(n),
    delete_user = render_delete_user_function(n),
  )
}

fn history_function(n: &Names, suffix: &str) -> String {
  format!("{}.{}", n.schema, n.object(suffix))
}

/// eraseFromHistory: removes one path from the current document and from
/// every snapshot, and records the erasure as a new revision whose audit row
/// has `erased_path` (never the value), in one transaction. A function,
/// because its statements must not share one snapshot (as deleteProfile's):
/// the first takes the profile's row lock, waiting for a save in flight, and
/// the next then see that save's audit row, so no snapshot escapes; saves
/// that come later wait for the erasure to commit. Returns no row when the
/// profile does not exist, and a NULL revision (nothing written) when it is
/// at MAX_REVISION.
fn render_erase_function(n: &Names) -> String {
  let Names {
    profiles,
    audit,
    index,
    ..
  } = n;
  let function = history_function(n, ERASE_FUNCTION);
  let changed = changed_paths("current_document", "new_document");
  let sc_new = source_count("new_document");
  let sc_old = source_count("current_document");
  let domains = active_domains("new_document");
  format!(
    r#"
create or replace function {function}(target_profile_id text, target_path text[], erased_pointer text,
                                       erase_context jsonb)
returns table (erased_revision integer, erased_snapshots integer, erased_from_current boolean)
language plpgsql as $erase_path$
declare
  current_revision integer;
  current_document jsonb;
  new_document jsonb;
  scrubbed integer;
begin
  select p.revision, p.document into current_revision, current_document
  from {profiles} p where p.profile_id = target_profile_id for update;
  if not found then
    return;
  end if;
  if current_revision >= {MAX_REVISION} then
    return query select null::integer, 0, false;
    return;
  end if;
  update {audit} a set document = a.document #- target_path
  where a.profile_id = target_profile_id and a.document #> target_path is not null;
  get diagnostics scrubbed = row_count;
  new_document := jsonb_set(current_document #- target_path, '{{metadata,revision}}', to_jsonb(current_revision + 1));
  update {profiles} p set revision = current_revision + 1, document = new_document, saved_at = now(),
    save_previous_revision = current_revision, save_changed_paths = {changed},
    save_source_count_delta = {sc_new} - coalesce({sc_old}, 0)
  where p.profile_id = target_profile_id;
  insert into {audit} as a (profile_id, revision, previous_revision, user_id, tenant_id, source_count,
                            source_count_delta, changed_top_level_paths, pson_version, updated_at, context, document,
                            erased_path)
  values (target_profile_id, current_revision + 1, current_revision, new_document ->> 'user_id',
          new_document ->> 'tenant_id', {sc_new}, {sc_new} - coalesce({sc_old}, 0), {changed},
          new_document ->> 'pson_version', new_document #>> '{{metadata,updated_at}}', erase_context, new_document,
          erased_pointer)
  on conflict (profile_id, revision) do update set
    previous_revision = excluded.previous_revision, user_id = excluded.user_id, tenant_id = excluded.tenant_id,
    source_count = excluded.source_count, source_count_delta = excluded.source_count_delta,
    changed_top_level_paths = excluded.changed_top_level_paths, pson_version = excluded.pson_version,
    updated_at = excluded.updated_at, recorded_at = now(), context = excluded.context, document = excluded.document,
    reverted_from = null, erased_path = excluded.erased_path;
  delete from {audit} a where a.profile_id = target_profile_id and a.revision > current_revision + 1;
  update {index} d set active_domains = {domains}, updated_at = date_trunc('milliseconds', now())
  where d.profile_id = target_profile_id;
  return query select current_revision + 1, scrubbed, current_document #> target_path is not null;
end
$erase_path$;
"#
  )
}

/// deleteProfilesByUserId: removes every profile of a user (its profile row,
/// all its audit rows and its index row), and the user's index rows whose
/// profile row is already gone. An index row of one of its profiles that the
/// 0.2.2 `writeUserProfileIndex` path listed under another user stays (every
/// save keeps a profile's index row under the profile's own user; deleting
/// by `profile_id = any (...)` was planned as a scan of the whole table). A function for the reason deleteProfile is
/// one: the first statement waits for saves in flight, the next see their
/// rows. Returns the profile ids removed (sorted) and the audit rows removed.
fn render_delete_user_function(n: &Names) -> String {
  let Names {
    profiles,
    audit,
    index,
    ..
  } = n;
  let function = history_function(n, DELETE_USER_FUNCTION);
  format!(
    r#"
create or replace function {function}(target_user_id text)
returns table (profile_ids text[], audit_rows integer)
language plpgsql as $delete_user_profiles$
declare
  gone text[];
  listed text[];
  gone_audit integer;
begin
  -- Saves lock their profile rows, then their index rows, each set in
  -- profile_id order (writeUserProfileIndex too); deleting in scan order
  -- instead deadlocked against them (40P01: __test__/concurrency.test.mjs).
  -- Only the rows locked here are deleted: a row that became the user's
  -- after this statement's snapshot was not locked in order.
  gone := array(select p.profile_id from {profiles} p where p.user_id = target_user_id
                order by p.profile_id for update);
  listed := array(select d.profile_id from {index} d where d.user_id = target_user_id
                  order by d.profile_id for update);
  delete from {profiles} p where p.profile_id = any (gone);
  delete from {index} d where d.profile_id = any (listed);
  gone := array(select distinct u.id from unnest(gone || listed) u(id) order by u.id);
  delete from {audit} a where a.profile_id = any (gone);
  get diagnostics gone_audit = row_count;
  return query select gone, gone_audit;
end
$delete_user_profiles$;
"#
  )
}

/// The revisions of `profile` recorded in `[since, until)` lie in
/// `low..=high`: one row of those two bounds, from the recorded_at index
/// (`0` and `MAX_REVISION` when a bound is not given; NULL when no row is in
/// the window). `recorded_at` mostly grows with the revision, but not always
/// (saves that waited for the row lock, writeProfileRevision, upgraded rows),
/// so the bounds come from the rows themselves and the caller still filters
/// each row by its time. `revision + 0`: a plain `max(revision)` is planned
/// as a walk down the primary key that discards every row outside the window
/// (`__test__/plans.test.mjs`), where the window's rows are one range of the
/// time index.
fn audit_window(n: &Names, profile: &str, since: &str, until: &str) -> String {
  let audit = &n.audit;
  format!(
    "select case when {since} is null then 0 else (select min(t.revision + 0) from {audit} t \
     where t.profile_id = {profile} and t.recorded_at >= {since}::timestamptz) end as low, \
     case when {until} is null then {MAX_REVISION} else (select max(t.revision + 0) from {audit} t \
     where t.profile_id = {profile} and t.recorded_at < {until}::timestamptz) end as high"
  )
}

fn render_history_statement(statement: Statement, n: &Names) -> String {
  let audit = &n.audit;
  match statement {
    // diffRevisions: `$1` profile, `$2` and `$3` the two revisions; one row
    // per revision found.
    Statement::LoadRevisionPair => format!(
      "select revision, document::text as document from {audit} \
       where profile_id = $1::text and revision in ($2::integer, $3::integer)"
    ),
    // loadProfile({ asOf }): `$1` profile, `$2` the instant (timestamptz
    // text). The snapshot of the newest row recorded at or before it.
    Statement::LoadProfileAsOf => format!(
      "select document::text as document, revision from {audit} \
       where profile_id = $1::text and recorded_at <= $2::text::timestamptz \
       order by recorded_at desc, revision desc limit 1"
    ),
    // saveProfile({ merge: 'disjoint-paths' }) after a conflict: `$1`
    // profile, `$2` the caller's expected revision. The snapshot the caller
    // started from (NULL when it is not in the log), the stored document and
    // its revision, and the paths erased since (a JSON array of pointers: the
    // erasure scrubbed the base too, so only this says they changed); no row
    // when the profile does not exist.
    Statement::LoadMergeBase => format!(
      "select (select a.document::text from {audit} a where a.profile_id = $1::text and a.revision = $2::integer) \
       as base, p.document::text as document, p.revision, \
       (select coalesce(json_agg(e.erased_path order by e.revision), '[]')::text from {audit} e \
        where e.profile_id = $1::text and e.revision > $2::integer and e.erased_path is not null) as erased_paths \
       from {profiles} p where p.profile_id = $1::text",
      profiles = n.profiles
    ),
    // blameProfile: `$1` profile, `$2` cursor (the revision of the last row
    // of the previous page, NULL: from the newest), `$3` page size. Newest
    // first, with what the blame reports of each revision.
    Statement::ListAuditSnapshots => format!(
      "select revision, {recorded_at} as recorded_at, context::text as context, document::text as document \
       from {audit} where profile_id = $1::text and revision <= coalesce($2::integer - 1, {MAX_REVISION}) \
       order by revision desc limit $3::integer",
      recorded_at = iso("recorded_at")
    ),
    // eraseFromHistory: `$1` profile, `$2` the path as a JSON array of keys,
    // `$3` the JSON Pointer recorded in the audit row, `$4` context.
    Statement::EraseFromHistory => format!(
      "select erased_revision, erased_snapshots, erased_from_current \
       from {}($1::text, array(select jsonb_array_elements_text($2::text::jsonb)), $3::text, \
       coalesce($4::text::jsonb, '{{}}'::jsonb))",
      history_function(n, ERASE_FUNCTION)
    ),
    // deleteProfilesByUserId: `$1` user id.
    Statement::DeleteProfilesByUserId => format!(
      "select array_to_json(profile_ids)::text as profile_ids, audit_rows from {}($1::text)",
      history_function(n, DELETE_USER_FUNCTION)
    ),
    other => unreachable!("{} is not a history statement", other.name()),
  }
}

/// Where the save statement takes its documents from.
#[derive(Clone, Copy)]
enum SaveInput {
  /// revertProfile: `$1` profile id, `$2` the revision whose snapshot is saved
  /// again, `$3` expected revision (NULL: any), `$4` context. Only a profile
  /// that exists is reverted (a save of a missing one would start it at
  /// revision 1 and drop the audit rows above). Returns the stored document too.
  Revert,
  /// `$1` document (jsonb text), `$2` expected revision (NULL: any), `$3` context (jsonb text or NULL).
  One,
  /// `$1` a JSON array of `{"d": document, "e": expected revision|null, "c": context|null}` with
  /// distinct profile ids: several callers' saves in one statement and one commit.
  Batch,
}

/// The save: one statement that bumps the revision under the row lock, appends
/// the audit row and upserts the domain index. Returns `(profile_id, revision)`
/// per saved document; a document whose expected revision did not match gets
/// no row and nothing of it is written.
///
/// The single and the batched form differ only in the `input` CTE, so they
/// cannot disagree on what a save does.
fn render_save(n: &Names, input: SaveInput) -> String {
  let Names {
    profiles,
    audit,
    index,
    ..
  } = n;
  let seq = &n.index_seq_literal;
  let input_rows = match input {
    SaveInput::One => {
      "select $1::text::jsonb as doc, $2::integer as expected_revision, $3::text::jsonb as context, \
       null::integer as reverted_from"
        .to_owned()
    }
    SaveInput::Revert => format!(
      "select a.document as doc, $3::integer as expected_revision, $4::text::jsonb as context, \
       a.revision as reverted_from from {audit} a \
       where a.profile_id = $1::text and a.revision = $2::integer \
       and exists (select 1 from {profiles} p where p.profile_id = $1::text)"
    ),
    SaveInput::Batch => {
      "select e.value -> 'd' as doc, (e.value ->> 'e')::integer as expected_revision, \
       nullif(e.value -> 'c', 'null'::jsonb) as context, null::integer as reverted_from \
       from jsonb_array_elements($1::text::jsonb) as e"
        .to_owned()
    }
  };
  let sc_new = source_count("excluded.document");
  let sc_old = source_count("cur.document");
  let sc_input = source_count("i.doc");
  let sc_saved = source_count("s.document");
  // `excluded.document` still carries the proposed revision; the stored one
  // always moves, so `metadata` always counts as changed.
  let changed = changed_paths("cur.document", "excluded.document");
  let domains = active_domains("s.document");
  // ON CONFLICT's WHERE sees only the proposed row, so it looks the caller's
  // expected revision up in `input`.
  let expected =
    "(select i.expected_revision from input i where i.profile_id = excluded.profile_id)";
  let returned_document = match input {
    SaveInput::Revert => ", s.document::text as document",
    SaveInput::One | SaveInput::Batch => "",
  };
  format!(
    r#"with input as (
  select raw.doc ->> 'profile_id' as profile_id, raw.doc, raw.expected_revision, raw.context, raw.reverted_from
  from ({input_rows}) raw
),
saved as (
  insert into {profiles} as cur (profile_id, user_id, tenant_id, revision, document,
                                 save_previous_revision, save_changed_paths, save_source_count_delta)
  select i.profile_id, i.doc ->> 'user_id', i.doc ->> 'tenant_id', 1,
         jsonb_set(i.doc, '{{metadata}}', coalesce(i.doc -> 'metadata', '{{}}'::jsonb) || '{{"revision": 1}}'::jsonb),
         null, array(select k from (select jsonb_object_keys(i.doc) union select 'metadata') keys(k) order by k),
         {sc_input}
  from input i
  -- With an expected revision the row must already exist; the upsert's WHERE then checks it under the lock.
  where coalesce(i.expected_revision, 0) = 0
     or exists (select 1 from {profiles} p where p.profile_id = i.profile_id)
  -- One lock order for every statement, so concurrent batches cannot deadlock.
  order by i.profile_id
  on conflict (profile_id) do update set
    user_id = excluded.user_id,
    tenant_id = excluded.tenant_id,
    revision = cur.revision + 1,
    document = jsonb_set(excluded.document, '{{metadata,revision}}', to_jsonb(cur.revision + 1)),
    saved_at = now(),
    save_previous_revision = cur.revision,
    save_changed_paths = {changed},
    save_source_count_delta = {sc_new} - coalesce({sc_old}, 0)
  -- At MAX_REVISION no next revision can be stored: no row, like a conflict
  -- (the caller tells them apart by the expected revision it sent).
  where ({expected} is null or cur.revision = {expected}) and cur.revision < {MAX_REVISION}
  returning cur.profile_id, cur.user_id, cur.tenant_id, cur.revision, cur.document,
            cur.save_previous_revision, cur.save_changed_paths, cur.save_source_count_delta
),
audited as (
  insert into {audit} as a (profile_id, revision, previous_revision, user_id, tenant_id, source_count,
                            source_count_delta, changed_top_level_paths, pson_version, updated_at, context, document,
                            reverted_from)
  select s.profile_id, s.revision, s.save_previous_revision, s.user_id, s.tenant_id, {sc_saved},
         s.save_source_count_delta, s.save_changed_paths, s.document ->> 'pson_version',
         s.document #>> '{{metadata,updated_at}}', coalesce(i.context, '{{}}'::jsonb), s.document, i.reverted_from
  from saved s join input i on i.profile_id = s.profile_id
  -- A snapshot left at this revision by writeProfileRevision (the 0.2.2 path) is replaced, never duplicated.
  on conflict (profile_id, revision) do update set
    previous_revision = excluded.previous_revision, user_id = excluded.user_id, tenant_id = excluded.tenant_id,
    source_count = excluded.source_count, source_count_delta = excluded.source_count_delta,
    changed_top_level_paths = excluded.changed_top_level_paths, pson_version = excluded.pson_version,
    updated_at = excluded.updated_at, recorded_at = now(), context = excluded.context, document = excluded.document,
    reverted_from = excluded.reverted_from, erased_path = null
),
-- Audit rows above the new revision belong to an earlier life of this profile
-- id (a delete that raced a save, or snapshots written ahead through the 0.2.2
-- path): the log must not claim revisions the profile never had.
stale_audit as (
  delete from {audit} a using saved s where a.profile_id = s.profile_id and a.revision > s.revision
),
indexed as (
  insert into {index} as cur (user_id, profile_id, tenant_id, active_domains, position, latest_seq, updated_at)
  -- Milliseconds, as Date#toISOString has them: readUserProfileIndex shows
  -- microseconds only when a writer gave them.
  select s.user_id, s.profile_id, s.tenant_id, {domains}, nextval({seq}), nextval({seq}),
         date_trunc('milliseconds', now())
  from saved s
  order by s.profile_id
  on conflict (profile_id) do update set
    user_id = excluded.user_id, tenant_id = excluded.tenant_id, active_domains = excluded.active_domains,
    -- A profile that moves to another user goes to the end of that user's list.
    position = case when cur.user_id = excluded.user_id then cur.position else excluded.position end,
    latest_seq = excluded.latest_seq, updated_at = excluded.updated_at
)
select s.profile_id, s.revision{returned_document} from saved s"#
  )
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn quotes_and_qualifies_table_names() {
    let q = Queries::new("tenant_a", "app_").unwrap();
    assert_eq!(q.tables.profiles, r#""tenant_a"."app_profiles""#);
    assert_eq!(q.tables.profile_audit, r#""tenant_a"."app_profile_audit""#);
    assert_eq!(q.tables.domain_index, r#""tenant_a"."app_domain_index""#);
  }

  #[test]
  fn rejects_injection_in_schema_and_prefix() {
    for bad in [
      "",
      "1abc",
      "a-b",
      "a\"b",
      "x; drop table y",
      "pson_\u{0}",
      "é",
    ] {
      let err = Queries::new(bad, "pson_").unwrap_err();
      assert_eq!(err.code(), "validation_error");
      assert_eq!(err.field(), Some("schema"));
      let err = Queries::new("public", bad).unwrap_err();
      assert_eq!(err.field(), Some("tablePrefix"));
    }
  }

  #[test]
  fn rejects_names_postgres_would_truncate() {
    let longest_ok = "p".repeat(MAX_IDENTIFIER_BYTES - "domain_index_user_idx".len());
    assert!(Queries::new("public", &longest_ok).is_ok());
    let too_long = format!("{longest_ok}x");
    assert_eq!(
      Queries::new("public", &too_long).unwrap_err().field(),
      Some("tablePrefix")
    );
    assert_eq!(
      Queries::new(&"s".repeat(64), "pson_").unwrap_err().field(),
      Some("schema")
    );
  }

  #[test]
  fn every_statement_is_rendered_with_its_tables() {
    let q = Queries::new("public", "pson_").unwrap();
    assert_eq!(q.statements().count(), Statement::ALL.len());
    for &statement in Statement::ALL {
      assert_eq!(Statement::from_name(statement.name()), Some(statement));
      assert_eq!(q.columns(statement.name()), Some(statement.columns()));
    }
    assert!(q
      .statement("loadProfile")
      .unwrap()
      .contains(r#""public"."pson_profiles""#));
    assert!(q
      .statement("saveProfile")
      .unwrap()
      .contains(r#""public"."pson_profile_audit""#));
    assert_eq!(q.statement("nope").unwrap_err().code(), "validation_error");
  }

  /// coalesced.rs `run_by_keys` reads a batched statement's rows as the
  /// single statement's rows led by their key.
  #[test]
  fn batched_rows_are_the_single_rows_led_by_their_key() {
    for (single, batched, key) in [
      (
        Statement::LoadProfile,
        Statement::LoadProfiles,
        "profile_id",
      ),
      (
        Statement::FindProfilesByUserId,
        Statement::FindProfilesByUserIds,
        "user_id",
      ),
    ] {
      assert_eq!(batched.columns()[0], key, "{}", batched.name());
      assert_eq!(
        &batched.columns()[1..],
        single.columns(),
        "{}",
        batched.name()
      );
    }
  }

  /// What a replica may run changes nothing: no writing command, no row
  /// lock (`for update` fails on a standby), no call of our functions.
  #[test]
  fn read_only_statements_write_nothing() {
    let q = Queries::new("public", "pson_").unwrap();
    let writes = [
      "insert",
      "update",
      "delete",
      "merge",
      "truncate",
      "nextval",
      "setval",
      ERASE_FUNCTION,
      DELETE_USER_FUNCTION,
      "pson_delete_profile",
    ];
    let read_only: Vec<_> = Statement::ALL
      .iter()
      .filter(|statement| statement.is_read_only())
      .collect();
    assert!(read_only.contains(&&Statement::LoadProfile));
    assert!(!read_only.contains(&&Statement::LoadMergeBase));
    for statement in read_only {
      let sql = q.statement(statement.name()).unwrap().to_lowercase();
      let words: Vec<&str> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
      for write in writes {
        assert!(!words.contains(&write), "{}: {write}", statement.name());
      }
    }
  }

  /// Each parameter (`$n`) of every statement, with the statement's name and
  /// the text right after its number.
  fn parameters(q: &Queries) -> Vec<(&'static str, &str)> {
    let mut found = Vec::new();
    for (name, sql) in q.statements() {
      for (at, _) in sql.match_indices('$') {
        let rest = &sql[at + 1..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
          found.push((name, &rest[digits..]));
        } // else dollar quoting, not a parameter
      }
    }
    found
  }

  #[test]
  fn parameters_are_always_cast() {
    // Every parameter is sent as text, so an uncast `$n` would compare text with
    // integer at run time. Pin that each occurrence carries a cast.
    let q = Queries::new("public", "pson_").unwrap();
    for (name, after) in parameters(&q) {
      assert!(
        after.starts_with("::"),
        "{name}: uncast parameter before {after}"
      );
    }
  }

  #[test]
  fn parameters_arrive_as_text_or_integer() {
    // postgres.js re-encodes a parameter by the type the server infers for it
    // (JSON.stringify for jsonb, new Date() for timestamptz), so every
    // parameter is cast to text first (or to integer, which it sends as is).
    let q = Queries::new("public", "pson_").unwrap();
    for (name, after) in parameters(&q) {
      assert!(
        after.starts_with("::text") || after.starts_with("::integer"),
        "{name}: parameter cast to something else than text or integer before {}",
        &after[..after.len().min(30)]
      );
    }
    assert!(q
      .statement("writeUserProfileIndex")
      .unwrap()
      .contains("$4::text::timestamptz"));
  }

  #[test]
  fn saves_stop_at_the_largest_revision() {
    let q = Queries::new("public", "pson_").unwrap();
    for name in ["saveProfile", "saveProfiles"] {
      assert!(
        q.statement(name)
          .unwrap()
          .contains(&format!("and cur.revision < {}", i32::MAX)),
        "{name}"
      );
    }
  }

  #[test]
  fn revert_is_the_save_statement_over_one_snapshot() {
    let q = Queries::new("public", "pson_").unwrap();
    let revert = q.statement("revertProfile").unwrap();
    let save = q.statement("saveProfile").unwrap();
    // Same statement after the input rows.
    let tail = |sql: &str| sql[sql.find("\n),\nsaved as").unwrap()..].to_owned();
    assert_eq!(
      tail(revert).replace(
        ", s.document::text as document from saved s",
        " from saved s"
      ),
      tail(save)
    );
    assert!(revert.contains("a.revision as reverted_from"));
    assert!(revert.contains("and exists (select 1 from \"public\".\"pson_profiles\" p"));
    assert!(save.contains("null::integer as reverted_from"));
  }

  #[test]
  fn write_profile_revision_links_its_neighbours() {
    let q = Queries::new("public", "pson_").unwrap();
    let sql = q.statement("writeProfileRevision").unwrap();
    assert!(sql.contains("$1::text::jsonb"));
    assert!(sql.contains("$2::text::jsonb as context"));
    assert!(
      sql.contains("a.revision < i.revision"),
      "looks up the previous revision"
    );
    assert!(
      sql.contains("update \"public\".\"pson_profile_audit\" a set previous_revision = i.revision")
    );
  }

  #[test]
  fn upgrade_reads_the_legacy_tables_it_is_given_quoted() {
    let defaults = Queries::new("app", "pson_").unwrap();
    for table in [
      "pson_profiles_current",
      "pson_profile_revisions",
      "pson_user_profile_index",
    ] {
      assert!(defaults
        .upgrade_sql
        .contains(&format!("from \"app\".\"{table}\"")));
    }
    let legacy = LegacyTables {
      current_profiles: "AppCurrent".into(),
      profile_revisions: "rev \"x\"".into(),
      user_index: "o'users".into(),
    };
    let q = Queries::with_legacy_tables("app", "pson_", &legacy).unwrap();
    assert!(q.upgrade_sql.contains(r#"from "app"."AppCurrent" c"#));
    assert!(q.upgrade_sql.contains(r#"from "app"."rev ""x""" rev"#));
    assert!(q.upgrade_sql.contains(r#"to_regclass('"app"."o''users"')"#));
    assert!(!q.upgrade_sql.contains("pson_profiles_current"));
    assert_eq!(
      q.schema_sql,
      Queries::new("app", "pson_").unwrap().schema_sql
    );
  }

  #[test]
  fn legacy_table_names_are_checked() {
    for (field, legacy) in [
      (
        "currentProfilesTable",
        LegacyTables {
          current_profiles: String::new(),
          ..LegacyTables::default()
        },
      ),
      (
        "profileRevisionsTable",
        LegacyTables {
          profile_revisions: "a\0b".into(),
          ..LegacyTables::default()
        },
      ),
      (
        "userIndexTable",
        LegacyTables {
          user_index: "é".repeat(32),
          ..LegacyTables::default()
        },
      ),
    ] {
      let err = Queries::with_legacy_tables("public", "pson_", &legacy).unwrap_err();
      assert_eq!(err.field(), Some(field));
    }
  }

  #[test]
  fn upgrade_dollar_quote_is_not_in_the_table_names() {
    let legacy = LegacyTables {
      user_index: "x$upgrade$; drop table t; --".into(),
      ..LegacyTables::default()
    };
    let q = Queries::with_legacy_tables("public", "pson_", &legacy).unwrap();
    assert!(q.upgrade_sql.contains("do $upgrade_$\n"));
    assert!(q.upgrade_sql.trim_end().ends_with("$upgrade_$;"));
    assert_eq!(q.upgrade_sql.matches("$upgrade_$").count(), 2);
  }

  #[test]
  fn checked_columns_are_the_ones_the_schema_creates() {
    let q = Queries::new("public", "pson_").unwrap();
    for column in PROFILE_COLUMNS
      .iter()
      .chain(&AUDIT_COLUMNS)
      .chain(&INDEX_COLUMNS)
    {
      assert!(
        q.schema_sql.contains(&format!("  {column} "))
          || q.schema_sql.contains(&format!("add column {column} ")),
        "{column} is not in schemaSql"
      );
    }
  }

  #[test]
  fn load_statement_is_pinned() {
    let q = Queries::new("public", "pson_").unwrap();
    assert_eq!(
      q.statement("loadProfile").unwrap(),
      r#"select document::text as document from "public"."pson_profiles" where profile_id = $1::text"#
    );
  }

  #[test]
  fn schema_creates_three_tables_idempotently() {
    let q = Queries::new("public", "pson_").unwrap();
    assert_eq!(
      q.schema_sql.matches("create table if not exists").count(),
      3
    );
    // The one drop: 0.3.0's list index, which the new one replaces.
    assert_eq!(q.schema_sql.matches("drop ").collect::<Vec<_>>(), ["drop "]);
    assert!(q
      .schema_sql
      .contains(r#"drop index if exists "public"."pson_domain_index_user_idx";"#));
    assert!(q
      .upgrade_sql
      .contains(r#""public"."pson_profiles_current""#));
    assert!(!q.upgrade_sql.to_lowercase().contains("drop "));
  }

  #[test]
  fn compression_is_set_only_where_lz4_exists_and_nothing_was_chosen() {
    let q = Queries::new("public", "pson_").unwrap();
    assert!(q
      .schema_sql
      .contains("name = 'default_toast_compression' and 'lz4' = any (enumvals)"));
    for table in [
      r#""public"."pson_profiles""#,
      r#""public"."pson_profile_audit""#,
    ] {
      assert!(q.schema_sql.contains(&format!(
        "alter table {table} alter column document set compression lz4;"
      )));
      assert!(q.schema_sql.contains(&format!(
        "attrelid = '{table}'::regclass and attname = 'document' and attcompression = ''"
      )));
    }
  }

  #[test]
  fn prune_batches_never_wait_and_keep_the_current_revision() {
    let q = Queries::new("public", "pson_").unwrap();
    for name in ["pruneAuditEntries", "pruneProfileAuditEntries"] {
      let sql = q.statement(name).unwrap();
      assert!(
        sql.contains("for update skip locked"),
        "{name}: never waits for a row lock"
      );
      assert!(
        sql.contains("a.revision < least(w.revision, newest.revision, young.revision)"),
        "{name}: only rows below the current revision and the newest kept ones"
      );
      // The rows per profile, the oldest rows looked at for olderThan, the batch.
      assert!(
        sql.matches("limit $4::integer").count() >= 3,
        "{name}: bounded by the batch size"
      );
    }
    assert!(q
      .statement("pruneProfileAuditEntries")
      .unwrap()
      .contains("where p.profile_id = $1::text"));
    assert!(q
      .statement("pruneAuditEntries")
      .unwrap()
      .contains("where p.profile_id >= $1::text order by p.profile_id limit $4::integer"));
  }
}
