//! A call's JSON arguments as a Cedar record, for `context.arguments`
//! (docs/decisions.md "Gateway"): numbers that are not 64-bit integers become
//! their decimal string (Cedar has no floats), nulls are dropped, arrays become
//! sets, and nesting deeper than [`MAX_DEPTH`] is refused.

use cedar_policy::RestrictedExpression;
use serde_json::Value;

/// Deepest nesting of objects and arrays a call's arguments may have.
pub const MAX_DEPTH: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgumentsError {
    #[error("arguments nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("arguments must be a JSON object")]
    NotAnObject,
    #[error("arguments could not be represented: {0}")]
    Unrepresentable(String),
}

/// Whether `arguments` can be put before the policies at all, without
/// building anything: checked on every call, including those whose decision
/// comes from the cache.
pub fn check(arguments: Option<&Value>) -> Result<(), ArgumentsError> {
    fn depth_ok(v: &Value, depth: usize) -> bool {
        match v {
            Value::Array(items) => {
                depth < MAX_DEPTH && items.iter().all(|i| depth_ok(i, depth + 1))
            }
            Value::Object(map) => depth < MAX_DEPTH && map.values().all(|i| depth_ok(i, depth + 1)),
            _ => true,
        }
    }
    match arguments {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(map)) if map.values().all(|v| depth_ok(v, 1)) => Ok(()),
        Some(Value::Object(_)) => Err(ArgumentsError::TooDeep),
        Some(_) => Err(ArgumentsError::NotAnObject),
    }
}

/// `context.arguments` for a call: absent arguments are an empty record.
pub fn to_record(arguments: Option<&Value>) -> Result<RestrictedExpression, ArgumentsError> {
    match arguments {
        None | Some(Value::Null) => record(&serde_json::Map::new(), 1),
        Some(Value::Object(map)) => record(map, 1),
        Some(_) => Err(ArgumentsError::NotAnObject),
    }
}

fn record(
    map: &serde_json::Map<String, Value>,
    depth: usize,
) -> Result<RestrictedExpression, ArgumentsError> {
    if depth > MAX_DEPTH {
        return Err(ArgumentsError::TooDeep);
    }
    let mut fields = Vec::with_capacity(map.len());
    for (k, v) in map {
        if let Some(e) = value(v, depth)? {
            fields.push((k.clone(), e));
        }
    }
    RestrictedExpression::new_record(fields)
        .map_err(|e| ArgumentsError::Unrepresentable(e.to_string()))
}

/// `None` for a null, which is dropped.
fn value(v: &Value, depth: usize) -> Result<Option<RestrictedExpression>, ArgumentsError> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => RestrictedExpression::new_long(i),
            None => RestrictedExpression::new_string(n.to_string()),
        },
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Array(items) => {
            if depth + 1 > MAX_DEPTH {
                return Err(ArgumentsError::TooDeep);
            }
            let mut set = Vec::with_capacity(items.len());
            for item in items {
                if let Some(e) = value(item, depth + 1)? {
                    set.push(e);
                }
            }
            RestrictedExpression::new_set(set)
        }
        Value::Object(map) => record(map, depth + 1)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        let mut v = json!("leaf");
        for _ in 0..MAX_DEPTH {
            v = json!({ "x": v });
        }
        // MAX_DEPTH objects inside the arguments object: one too many.
        assert_eq!(
            to_record(Some(&json!({ "a": v }))).err(),
            Some(ArgumentsError::TooDeep)
        );
        assert_eq!(
            check(Some(&json!({ "a": v }))).err(),
            Some(ArgumentsError::TooDeep)
        );
        let mut set = json!(["leaf"]);
        for _ in 0..MAX_DEPTH - 1 {
            set = json!([set]);
        }
        assert_eq!(
            check(Some(&json!({ "a": set }))),
            Err(ArgumentsError::TooDeep)
        );
        assert!(to_record(Some(&json!({ "a": set }))).is_err());
        let mut ok = json!("leaf");
        for _ in 0..MAX_DEPTH - 1 {
            ok = json!({ "x": ok });
        }
        // Exactly MAX_DEPTH levels, counting the arguments object itself.
        assert!(to_record(Some(&json!({ "a": ok }))).is_ok());
        assert!(check(Some(&json!({ "a": ok }))).is_ok());
    }

    #[test]
    fn non_object_arguments_are_refused() {
        assert_eq!(
            to_record(Some(&json!([1, 2]))).err(),
            Some(ArgumentsError::NotAnObject)
        );
        assert_eq!(
            check(Some(&json!([1, 2]))),
            Err(ArgumentsError::NotAnObject)
        );
        assert!(to_record(None).is_ok());
    }
}
