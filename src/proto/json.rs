//! JSON ⇄ MessagePack value mapping for the CLI and any JSON surface.
//!
//! JSON → value is exact (integers stay integers, floats stay floats). Value → JSON has
//! documented lossy cases, because MessagePack is richer than JSON:
//! - binary data becomes an array of byte numbers;
//! - map keys that are not strings are written as their JSON text (`1` → `"1"`);
//! - extension values become `{"$ext": [type, [bytes..]]}`;
//! - non-finite floats become `null`.

use rmpv::Value;
use serde_json::Value as Json;

/// Converts a JSON value to a MessagePack value.
pub fn to_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        Json::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (Value::from(k.as_str()), to_value(v)))
                .collect(),
        ),
    }
}

/// Converts a MessagePack value to JSON (see the module docs for lossy cases).
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => {
            if let Some(u) = i.as_u64() {
                Json::from(u)
            } else {
                Json::from(i.as_i64().unwrap_or_default())
            }
        }
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::String(s) => match s.as_str() {
            Some(s) => Json::String(s.to_string()),
            None => Json::Array(s.as_bytes().iter().map(|b| Json::from(*b)).collect()),
        },
        Value::Binary(b) => Json::Array(b.iter().map(|x| Json::from(*x)).collect()),
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) if s.is_str() => {
                            s.as_str().unwrap_or_default().to_string()
                        }
                        other => to_json(other).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Value::Ext(t, data) => {
            let bytes: Vec<Json> = data.iter().map(|b| Json::from(*b)).collect();
            serde_json::json!({ "$ext": [t, bytes] })
        }
    }
}

fn float(f: f64) -> Json {
    serde_json::Number::from_f64(f)
        .map(Json::Number)
        .unwrap_or(Json::Null)
}

/// Parses a command-line argument: JSON if it parses as JSON, else the literal string.
pub fn parse_arg(s: &str) -> Value {
    match serde_json::from_str::<Json>(s) {
        Ok(j) => to_value(&j),
        Err(_) => Value::from(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_of_plain_json() {
        let j: Json = serde_json::from_str(
            r#"{"a":[1,-2,3.5,"x",null,true],"b":{"c":18446744073709551615}}"#,
        )
        .unwrap();
        assert_eq!(to_json(&to_value(&j)), j);
    }

    #[test]
    fn args_fall_back_to_strings() {
        assert_eq!(parse_arg("42"), Value::from(42));
        assert_eq!(parse_arg("hi"), Value::from("hi"));
        assert_eq!(parse_arg("\"hi\""), Value::from("hi"));
        assert_eq!(parse_arg("[1,2]"), Value::Array(vec![1.into(), 2.into()]));
    }

    #[test]
    fn lossy_cases_are_as_documented() {
        assert_eq!(
            to_json(&Value::Binary(vec![1, 2])),
            serde_json::json!([1, 2])
        );
        assert_eq!(
            to_json(&Value::Map(vec![(1.into(), 2.into())])),
            serde_json::json!({"1": 2})
        );
        assert_eq!(to_json(&Value::F64(f64::NAN)), Json::Null);
    }
}
