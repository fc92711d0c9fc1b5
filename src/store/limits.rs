//! Every limit the call path works by, in one place. Nothing else in the
//! crate or in `lib/` holds a batching or stall limit of its own: the JS
//! driver reads its crossing sizes from here (exported by `repository.rs`).
//!
//! Each was measured on 2 cores with 32 calls in flight, ~1 KB documents
//! (the bench's `1k` scenario). To re-derive one, change it, commit, and
//! compare the two commits side by side in one run:
//!
//! ```text
//! npm run bench -- --ab <the commit before> --only native,ab --scenario 1k --no-replicas
//! ```

use std::time::Duration;

/// How one kind of coalesced call is cut into statements.
#[derive(Debug, Clone, Copy)]
pub struct KindLimits {
  /// The most calls one statement carries (keeps statements, replies and
  /// lock sets small enough that several statements share the work).
  pub max_calls: usize,
  /// The fewest calls a statement takes from a burst while more wait, and
  /// so the size of one N-API crossing: below this, a statement's fixed cost
  /// (a round trip, an executor start, a commit) outweighs the gain of one
  /// more server process working side by side.
  pub min_share: usize,
  /// How many statements of the kind may run at once; the calls waiting are
  /// shared evenly among them.
  pub concurrent_statements: usize,
}

/// Saves. One commit's fixed cost (a WAL flush) is shared by every save in
/// it: two statements of 16 measured best (two beat 1, 3, 4 and 8 at once;
/// 8 saves each was ~5% slower).
pub const SAVES: KindLimits = KindLimits {
  max_calls: 64,
  min_share: 16,
  concurrent_statements: 2,
};

/// Loads. Replies carry whole documents and a caller waits for the whole
/// reply, so small statements keep the server, the addon's threads and the
/// JS thread busy side by side: four statements of 8 beat two of 16 (~10%)
/// and eight of 4 (more statement starts). Eight at once let ~20 KB loads run
/// as eight small statements whose server processes queued for the 2 cores:
/// p99 24-29 ms and stalls of up to 300 ms, against 15-17 ms and at most
/// 130 ms with four, at the same throughput (`--scenario 20k`).
pub const LOADS: KindLimits = KindLimits {
  max_calls: 8,
  min_share: 8,
  concurrent_statements: 4,
};

/// Finds by user: sized like loads (small replies, the same pipelining).
pub const FINDS: KindLimits = LOADS;

/// The most document bytes one save statement sends: large documents gain
/// nothing from sharing a statement, and one huge statement would keep the
/// others waiting (`--scenario 20k`, `100k`).
pub const MAX_STATEMENT_BYTES: usize = 256 * 1024;

/// About how many bytes of documents one N-API crossing carries (the JS
/// driver's estimate): large documents then come back, and are parsed, while
/// the server still works on the rest of the burst, instead of all at once
/// at its end (`--scenario 20k`).
pub const CROSSING_BYTES: usize = 64 * 1024;

/// A statement that has made no progress for this long is stuck (behind a
/// row lock, or slow): a batch waiting this long for a free statement of its
/// kind goes out anyway, and a connection whose calls have not progressed
/// for this long is passed over. No call that could go out at once waits on
/// it. Far above any statement of the bench (p99.9 under 30 ms at every
/// scenario), far below a lock held by a user's transaction.
pub const STALLED_AFTER: Duration = Duration::from_millis(250);
