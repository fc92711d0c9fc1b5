//! JSON Patch (RFC 6902) for `diffRevisions`, by the `json-patch` crate.
//! Called synchronously from JS in every mode (the executor modes load the
//! addon too); the documents arrive as the JSON text the server sent, so
//! nothing is parsed twice.

use napi_derive::napi;

use crate::error::StoreError;

/// The RFC 6902 patch (as JSON text: an array of operations) that turns the
/// document `from` into `to`, both given as JSON text. Applying it to `from`
/// gives `to`. Rejects with `validation_error` when a text is not JSON this
/// crate can read (a number beyond the range of a 64-bit float).
#[napi]
pub fn json_patch_diff(from: String, to: String) -> napi::Result<String> {
  Ok(diff_texts(&from, &to)?)
}

fn diff_texts(from: &str, to: &str) -> Result<String, StoreError> {
  let parse = |field: &'static str, text: &str| {
    serde_json::from_str::<serde_json::Value>(text).map_err(|error| {
      StoreError::validation(field, format!("{field} is not readable JSON: {error}"))
    })
  };
  let patch = json_patch::diff(&parse("from", from)?, &parse("to", to)?);
  serde_json::to_string(&patch)
    .map_err(|error| StoreError::validation("patch", format!("cannot write the patch: {error}")))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn patch_turns_from_into_to() {
    let from = r#"{"a":1,"b":{"c":[1,2,3]},"gone":true}"#;
    let to = r#"{"a":2,"b":{"c":[1,3]},"new":"x"}"#;
    let patch: json_patch::Patch = serde_json::from_str(&diff_texts(from, to).unwrap()).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(from).unwrap();
    json_patch::patch(&mut doc, &patch).unwrap();
    assert_eq!(doc, serde_json::from_str::<serde_json::Value>(to).unwrap());
    assert_eq!(diff_texts(from, from).unwrap(), "[]");
  }

  #[test]
  fn numbers_keep_every_bit() {
    // jsonb prints this double as 226 digits of decimal; serde_json reads it
    // exactly only with `float_roundtrip` (found by the property test).
    let long = format!("-0.{}44399706861247155", "0".repeat(205));
    let patch = diff_texts("{}", &format!(r#"{{"a":{long}}}"#)).unwrap();
    assert_eq!(
      patch,
      r#"[{"op":"add","path":"/a","value":-4.4399706861247155e-206}]"#
    );
  }

  #[test]
  fn unreadable_json_is_a_validation_error() {
    let error = diff_texts("{", "{}").unwrap_err();
    assert_eq!(error.code(), "validation_error");
    assert_eq!(error.field(), Some("from"));
  }
}
