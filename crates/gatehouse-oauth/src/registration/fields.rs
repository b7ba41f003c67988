//! Reading registration metadata members (RFC 7591 §2): typed, bounded,
//! with the RFC 7591 §3.2.2 error codes.

use crate::error::{ErrorCode, OAuthError};
use serde_json::{Map, Value};

pub(super) fn metadata_error(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, d)
}

pub(super) fn redirect_error(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, d)
}

pub(super) fn optional_string<'a>(
    m: &'a Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<&'a str>, OAuthError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() > max => Err(metadata_error(format!(
            "{field} is longer than {max} bytes"
        ))),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(metadata_error(format!("{field} must be a string"))),
    }
}

pub(super) fn optional_string_list<'a>(
    m: &'a Map<String, Value>,
    field: &str,
    max_items: usize,
    max_len: usize,
) -> Result<Option<Vec<&'a str>>, OAuthError> {
    let items = match m.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(metadata_error(format!(
                "{field} must be an array of strings"
            )));
        }
    };
    if items.len() > max_items {
        return Err(metadata_error(format!(
            "{field} has more than {max_items} entries"
        )));
    }
    items
        .iter()
        .map(|v| match v {
            Value::String(s) if s.len() <= max_len => Ok(s.as_str()),
            Value::String(_) => Err(metadata_error(format!(
                "an entry of {field} is longer than {max_len} characters"
            ))),
            _ => Err(metadata_error(format!(
                "{field} must be an array of strings"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
