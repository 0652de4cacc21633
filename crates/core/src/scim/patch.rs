//! PATCH bodies (RFC 7644 §3.5.2): `{"schemas": [PatchOp], "Operations": [{op, path, value}]}`.
//!
//! Identity-provider quirks read here: Entra ID capitalizes the operation (`"Replace"`) and
//! sends booleans as strings (`"False"`, read by [`super::lenient_bool`]); Entra ID and
//! OneLogin address one member as `members[value eq "…"]` (read by [`member_filter`]).

use serde_json::Value;

use super::{ScimError, PATCH_SCHEMA};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

/// One operation of a PATCH body.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub op: Op,
    pub path: Option<String>,
    pub value: Value,
}

/// The operations of a PATCH body, in order.
pub fn operations(body: &Value) -> Result<Vec<PatchOp>, ScimError> {
    let schemas_ok = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|v| v.as_str() == Some(PATCH_SCHEMA)));
    if !schemas_ok {
        return Err(ScimError::invalid(
            "invalidSyntax",
            format!("schemas must contain {PATCH_SCHEMA}"),
        ));
    }
    let ops = body
        .get("Operations")
        .and_then(Value::as_array)
        .filter(|ops| !ops.is_empty())
        .ok_or_else(|| {
            ScimError::invalid("invalidSyntax", "Operations must be a non-empty list")
        })?;
    ops.iter().map(operation).collect()
}

fn operation(v: &Value) -> Result<PatchOp, ScimError> {
    let op = match v
        .get("op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("add") => Op::Add,
        Some("replace") => Op::Replace,
        Some("remove") => Op::Remove,
        _ => {
            return Err(ScimError::invalid(
                "invalidSyntax",
                "op must be add, replace or remove",
            ))
        }
    };
    let path = match v.get("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if !p.trim().is_empty() => Some(p.trim().to_owned()),
        Some(_) => return Err(ScimError::invalid("invalidPath", "path must be a string")),
    };
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if op != Op::Remove && value.is_null() {
        return Err(ScimError::invalid(
            "invalidValue",
            "add and replace need a value",
        ));
    }
    Ok(PatchOp { op, path, value })
}

/// The member id of a path `members[value eq "<id>"]`, if the path is one.
pub fn member_filter(path: &str) -> Result<Option<String>, ScimError> {
    let Some(inner) = path
        .strip_prefix("members[")
        .or_else(|| path.strip_prefix("Members["))
    else {
        return Ok(None);
    };
    let inner = inner
        .strip_suffix(']')
        .ok_or_else(|| ScimError::invalid("invalidPath", "unterminated members filter"))?;
    let value = eq_value(inner, "value").ok_or_else(|| {
        ScimError::invalid(
            "invalidFilter",
            "only members[value eq \"<id>\"] is supported",
        )
    })?;
    Ok(Some(value))
}

/// The string of a filter `<attribute> eq "<string>"` on `attribute`, if `text` is one.
pub fn eq_value(text: &str, attribute: &str) -> Option<String> {
    let mut parts = text.trim().splitn(3, char::is_whitespace);
    let (attr, op, value) = (parts.next(), parts.next(), parts.next());
    let ok = attr.is_some_and(|a| a.eq_ignore_ascii_case(attribute))
        && op.is_some_and(|o| o.eq_ignore_ascii_case("eq"));
    value
        .filter(|_| ok)
        .and_then(|v| serde_json::from_str::<String>(v.trim()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_entra_ids_capitalized_operations() {
        let ops = operations(&json!({
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
        }))
        .unwrap();
        assert_eq!(ops[0].op, Op::Replace);
        assert_eq!(ops[0].path.as_deref(), Some("active"));
    }

    #[test]
    fn refuses_a_body_without_the_patch_schema_or_operations() {
        for body in [
            json!({"Operations": [{"op": "add", "value": {}}]}),
            json!({"schemas": [PATCH_SCHEMA], "Operations": []}),
            json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "merge", "value": 1}]}),
            json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "path": "active"}]}),
        ] {
            assert!(operations(&body).is_err(), "{body}");
        }
    }

    #[test]
    fn reads_a_member_filter_path_and_refuses_other_filters() {
        assert_eq!(
            member_filter(r#"members[value eq "usr_1"]"#).unwrap(),
            Some("usr_1".into())
        );
        assert_eq!(member_filter("members").unwrap(), None);
        assert!(member_filter(r#"members[display eq "x"]"#).is_err());
        assert!(member_filter(r#"members[value co "x"]"#).is_err());
        assert!(member_filter(r#"members[value eq "x""#).is_err());
    }
}
