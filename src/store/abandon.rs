//! Whether every caller of a statement has given up on it.
//!
//! JS marks a crossing abandoned when every call in it was aborted (its
//! `AbortSignal` fired) after it was sent (`NativeRepository::abandon`). A
//! statement serves the calls of one crossing or, coalesced, of several:
//! it is abandoned once every crossing it serves is. Only then may it be
//! cancelled on the server (`Shared::run`): a statement that still serves
//! one call that was not aborted always runs to its end.

use tokio_util::sync::CancellationToken;

/// The crossings a statement serves, or `Never` when one of its calls cannot
/// be aborted (it came without a signal, or from Rust).
#[derive(Debug, Clone, Default)]
pub enum Abandon {
  #[default]
  Never,
  /// Abandoned when every one of these crossings is.
  When(Vec<CancellationToken>),
}

impl Abandon {
  /// One crossing's calls.
  pub fn crossing(token: Option<CancellationToken>) -> Self {
    token.map_or(Self::Never, |token| Self::When(vec![token]))
  }

  /// The calls of all of `parts`: abandoned once every part is.
  pub fn all<'a>(parts: impl IntoIterator<Item = &'a Abandon>) -> Self {
    let mut tokens: Vec<CancellationToken> = Vec::new();
    for part in parts {
      match part {
        Self::Never => return Self::Never,
        // Calls of one crossing bring the same token: waiting on it twice
        // costs nothing worth a search (a statement carries at most 64).
        Self::When(more) => tokens.extend(more.iter().cloned()),
      }
    }
    if tokens.is_empty() {
      Self::Never
    } else {
      Self::When(tokens)
    }
  }

  pub fn can_happen(&self) -> bool {
    matches!(self, Self::When(_))
  }

  pub fn is_abandoned(&self) -> bool {
    match self {
      Self::Never => false,
      Self::When(tokens) => tokens.iter().all(CancellationToken::is_cancelled),
    }
  }

  /// Resolves once the statement is abandoned; never for `Never`.
  pub async fn abandoned(&self) {
    match self {
      Self::Never => std::future::pending().await,
      Self::When(tokens) => {
        for token in tokens {
          token.cancelled().await;
        }
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_statement_is_abandoned_only_when_every_crossing_it_serves_is() {
    let (a, b) = (CancellationToken::new(), CancellationToken::new());
    let one = Abandon::crossing(Some(a.clone()));
    let both = Abandon::all([&one, &Abandon::crossing(Some(b.clone())), &one]);
    a.cancel();
    assert!(one.is_abandoned());
    assert!(!both.is_abandoned(), "b's calls still wait");
    b.cancel();
    assert!(both.is_abandoned());
  }

  #[test]
  fn a_call_that_cannot_be_aborted_keeps_its_statement() {
    let a = CancellationToken::new();
    a.cancel();
    let mixed = Abandon::all([&Abandon::crossing(Some(a)), &Abandon::crossing(None)]);
    assert!(!mixed.can_happen());
    assert!(!mixed.is_abandoned());
    assert!(!Abandon::all([]).can_happen());
  }
}
