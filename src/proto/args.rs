//! Function arguments on the wire: positional MessagePack arrays, keyword maps, and how the
//! serving node fits them to a function's declared parameters.
//!
//! Handlers only ever see a positional array. When a call carries keyword arguments (or
//! fewer positional ones than parameters) the serving node rebuilds the array here, using
//! the parameter names from the function's [`Param`] list; missing trailing arguments become
//! nil, so `Option` parameters may be omitted.

use bytes::Bytes;
use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::function::{signature, Param};
use crate::proto::wire::Failure;

/// The shape of an encoded argument value, read from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// No arguments (nil or nothing at all).
    Empty,
    /// A MessagePack array: positional arguments.
    Array,
    /// A MessagePack map: keyword arguments.
    Map,
    /// Any other single value: one positional argument.
    Single,
}

/// Classifies encoded arguments without decoding them.
pub fn shape(bytes: &[u8]) -> Shape {
    match bytes.first() {
        None | Some(0xc0) => Shape::Empty,
        Some(0x90..=0x9f) | Some(0xdc) | Some(0xdd) => Shape::Array,
        Some(0x80..=0x8f) | Some(0xde) | Some(0xdf) => Shape::Map,
        Some(_) => Shape::Single,
    }
}

/// The arguments as the caller sent them, for a handler that binds them itself: the array
/// `[positional, keyword]` (an argument map given as the arguments counts as keywords).
pub fn as_sent(args: &[u8], kwargs: Option<&[u8]>) -> Result<Bytes, Failure> {
    let bad =
        |e: rmpv::decode::Error| Failure::bad_arguments(format!("undecodable arguments: {e}"));
    let decode = |b: &[u8]| rmpv::decode::read_value(&mut &b[..]).map_err(bad);
    let (positional, mut keywords) = match shape(args) {
        Shape::Empty => (Value::Array(vec![]), Value::Map(vec![])),
        Shape::Array => (decode(args)?, Value::Map(vec![])),
        Shape::Map => (Value::Array(vec![]), decode(args)?),
        Shape::Single => (Value::Array(vec![decode(args)?]), Value::Map(vec![])),
    };
    if let Some(kw) = kwargs {
        if matches!(&keywords, Value::Map(m) if !m.is_empty()) {
            return Err(Failure::bad_arguments(
                "keyword arguments given twice (as the argument map and as kwargs)",
            ));
        }
        keywords = decode(kw)?;
    }
    encode_value(&Value::Array(vec![positional, keywords]))
}

/// Number of elements of an encoded array (None if it is not an array).
pub fn array_len(bytes: &[u8]) -> Option<usize> {
    match *bytes.first()? {
        b @ 0x90..=0x9f => Some((b & 0x0f) as usize),
        0xdc if bytes.len() >= 3 => Some(u16::from_be_bytes([bytes[1], bytes[2]]) as usize),
        0xdd if bytes.len() >= 5 => {
            Some(u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize)
        }
        _ => None,
    }
}

/// Encodes a result value (structs as maps with named fields).
pub fn encode_value<T: Serialize + ?Sized>(v: &T) -> Result<Bytes, Failure> {
    // Into the thread's scratch, then one exact allocation: a fresh `Vec` would grow by
    // doubling from nothing.
    crate::proto::scratch::with_scratch(|buf| {
        rmp_serde::encode::write_named(&mut bytes::BufMut::writer(&mut *buf), v)?;
        Ok(Bytes::copy_from_slice(buf))
    })
    .map_err(|e: rmp_serde::encode::Error| {
        Failure::remote(format!("cannot encode the result: {e}"))
    })
}

/// Decodes a positional argument array into the handler's argument tuple `A`.
///
/// A nil or empty input counts as no arguments; a single non-array value counts as one
/// positional argument (so `call("echo", "hi")` works like `call("echo", ("hi",))`).
///
/// A failure says which argument was wrong (`argument 0: …`, which the serving node turns
/// into the parameter's name) in serde's words (`expected i64, got string "x"`), not
/// MessagePack's; bytes that are not exactly one MessagePack value are refused.
pub fn decode_args<A: DeserializeOwned>(bytes: &[u8]) -> Result<A, Failure> {
    let single;
    let input: &[u8] = match shape(bytes) {
        // `()` decodes from nil, tuples from arrays: an empty list must suit both.
        Shape::Array if array_len(bytes) == Some(0) && bytes.len() == 1 => return empty(),
        Shape::Empty if bytes.len() <= 1 => return empty(),
        Shape::Array | Shape::Empty => bytes,
        Shape::Single => {
            let mut one = Vec::with_capacity(bytes.len() + 1);
            one.push(0x91);
            one.extend_from_slice(bytes);
            single = one;
            &single
        }
        Shape::Map => {
            return Err(Failure::bad_arguments(
                "keyword arguments given to a function without parameter names",
            ))
        }
    };
    whole(input).map_err(|_| Failure::bad_arguments(explain::<A>(input)))
}

/// No arguments, for `()` (from nil) or a tuple (from an empty array).
fn empty<A: DeserializeOwned>() -> Result<A, Failure> {
    rmp_serde::from_slice(&[0x90])
        .or_else(|_| rmp_serde::from_slice(&[0xc0]))
        .map_err(|_| Failure::bad_arguments(explain::<A>(&[0x90])))
}

/// `A` from `bytes`, which must hold exactly one MessagePack value.
fn whole<A: DeserializeOwned>(bytes: &[u8]) -> Result<A, ()> {
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
    let a = A::deserialize(&mut de).map_err(|_| ())?;
    if de.position() as usize == bytes.len() {
        Ok(a)
    } else {
        Err(())
    }
}

/// Why `bytes` (an array of arguments) do not decode as `A`, found the slow way (only after
/// the fast decode failed): as a MessagePack value first, then as `A` with the path of the
/// first mismatch.
fn explain<A: DeserializeOwned>(bytes: &[u8]) -> String {
    let mut rest = bytes;
    let value = match rmpv::decode::read_value(&mut rest) {
        Ok(v) if rest.is_empty() => v,
        Ok(_) => {
            return format!(
                "the arguments are not one MessagePack value ({} bytes left over)",
                rest.len()
            )
        }
        Err(e) => return format!("the arguments are not valid MessagePack: {e}"),
    };
    match serde_path_to_error::deserialize::<_, A>(value) {
        Ok(_) => "the arguments do not fit the parameters".to_string(),
        Err(e) => {
            let path = e.path().to_string();
            let what = plain(&e.into_inner().to_string());
            match path.trim_start_matches('[').split(']').next() {
                Some(i) if i.parse::<usize>().is_ok() => format!("argument {i}: {what}"),
                _ => what,
            }
        }
    }
}

/// serde's "invalid type: string \"x\", expected i64" as "expected i64, got string \"x\"".
fn plain(serde: &str) -> String {
    let serde = serde
        .strip_prefix("error while decoding value: ")
        .unwrap_or(serde);
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((got, expected)) = serde
            .strip_prefix(prefix)
            .and_then(|r| r.rsplit_once(", expected "))
        {
            return format!("expected {expected}, got {got}");
        }
    }
    serde.to_string()
}

/// The one MessagePack value `bytes` hold (left-over bytes are an error too).
fn read_value(bytes: &[u8], what: &str) -> Result<Value, Failure> {
    let mut rest = bytes;
    let v = rmpv::decode::read_value(&mut rest)
        .map_err(|e| Failure::bad_arguments(format!("{what} are not valid MessagePack: {e}")))?;
    if !rest.is_empty() {
        return Err(Failure::bad_arguments(format!(
            "{what} are not one MessagePack value ({} bytes left over)",
            rest.len()
        )));
    }
    Ok(v)
}

fn positional_values(bytes: &[u8]) -> Result<Vec<Value>, Failure> {
    match shape(bytes) {
        Shape::Empty if bytes.len() > 1 => read_value(bytes, "the arguments").map(|_| Vec::new()),
        Shape::Empty => Ok(Vec::new()),
        Shape::Array => match read_value(bytes, "positional arguments")? {
            Value::Array(items) => Ok(items),
            _ => unreachable!("shape said array"),
        },
        Shape::Single => Ok(vec![read_value(bytes, "the arguments")?]),
        Shape::Map => Ok(Vec::new()),
    }
}

fn keyword_values(bytes: &[u8]) -> Result<Vec<(String, Value)>, Failure> {
    match read_value(bytes, "keyword arguments")? {
        Value::Nil => Ok(Vec::new()),
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| match k {
                Value::String(s) if s.is_str() => Ok((s.into_str().unwrap_or_default(), v)),
                other => Err(Failure::bad_arguments(format!(
                    "keyword argument names must be strings, got {other}"
                ))),
            })
            .collect(),
        other => Err(Failure::bad_arguments(format!(
            "keyword arguments must be a map, got {other}"
        ))),
    }
}

/// Fits positional and keyword arguments to `params`, producing the positional array the
/// handler decodes. Returns `Ok(None)` when the positional bytes can be used unchanged
/// (the fast path: an array of exactly the right length and no keywords).
pub fn fit(
    params: Option<&[Param]>,
    args: &[u8],
    kwargs: Option<&[u8]>,
) -> Result<Option<Bytes>, Failure> {
    let with_sig = |mut f: Failure| {
        f.expected = signature(params);
        f
    };
    let Some(params) = params else {
        // Variadic: positional only.
        if kwargs.is_some() || shape(args) == Shape::Map {
            return Err(with_sig(Failure::bad_arguments(
                "this function takes positional arguments only",
            )));
        }
        return Ok(None);
    };
    if kwargs.is_none() && shape(args) != Shape::Map && array_len(args) == Some(params.len()) {
        return Ok(None);
    }
    // Slow path: build the list by name.
    let mut named = match (shape(args), kwargs) {
        (Shape::Map, None) => keyword_values(args).map_err(with_sig)?,
        (Shape::Map, Some(_)) => {
            return Err(with_sig(Failure::bad_arguments(
                "keyword arguments given twice (as the argument map and as kwargs)",
            )))
        }
        (_, Some(kw)) => keyword_values(kw).map_err(with_sig)?,
        (_, None) => Vec::new(),
    };
    let positional = positional_values(args).map_err(with_sig)?;
    if positional.len() > params.len() {
        return Err(with_sig(Failure::bad_arguments(format!(
            "takes {} argument{}, got {} positional",
            params.len(),
            if params.len() == 1 { "" } else { "s" },
            positional.len()
        ))));
    }
    let mut out = Vec::with_capacity(params.len());
    let mut positional = positional.into_iter();
    for p in params {
        let from_name = named
            .iter()
            .position(|(k, _)| *k == p.name)
            .map(|i| named.remove(i).1);
        match (positional.next(), from_name) {
            (Some(_), Some(_)) => {
                return Err(with_sig(Failure::bad_arguments(format!(
                    "argument `{}` given both by position and by name",
                    p.name
                ))))
            }
            (Some(v), None) | (None, Some(v)) => out.push(v),
            (None, None) => out.push(Value::Nil),
        }
    }
    if let Some((k, _)) = named.first() {
        return Err(with_sig(Failure::bad_arguments(format!(
            "unknown argument `{k}`"
        ))));
    }
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, &Value::Array(out))
        .map_err(|e| Failure::internal(format!("cannot re-encode arguments: {e}")))?;
    Ok(Some(Bytes::from(buf)))
}

/// Names of parameters that were filled with nil by [`fit`] because nothing was given;
/// used to turn serde's "invalid type: nil" into "missing argument `x`".
pub fn missing(params: &[Param], args: &[u8], kwargs: Option<&[u8]>) -> Vec<String> {
    let given_pos = match shape(args) {
        Shape::Array => array_len(args).unwrap_or(0),
        Shape::Single => 1,
        _ => 0,
    };
    let names: Vec<String> = match (shape(args), kwargs) {
        (Shape::Map, _) => keyword_values(args).unwrap_or_default(),
        (_, Some(kw)) => keyword_values(kw).unwrap_or_default(),
        _ => Vec::new(),
    }
    .into_iter()
    .map(|(k, _)| k)
    .collect();
    params
        .iter()
        .skip(given_pos)
        .filter(|p| !names.contains(&p.name))
        .map(|p| p.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(names: &[&str]) -> Vec<Param> {
        names
            .iter()
            .map(|n| Param {
                name: n.to_string(),
                ty: "i64".into(),
            })
            .collect()
    }
    fn enc<T: Serialize>(v: T) -> Vec<u8> {
        rmp_serde::to_vec_named(&v).unwrap()
    }

    #[test]
    fn shapes() {
        assert_eq!(shape(&enc((1, 2))), Shape::Array);
        assert_eq!(shape(&enc(())), Shape::Empty);
        assert_eq!(shape(&enc("hi")), Shape::Single);
        let mut m = std::collections::BTreeMap::new();
        m.insert("a", 1);
        assert_eq!(shape(&enc(&m)), Shape::Map);
        assert_eq!(array_len(&enc(vec![0u8; 20])), Some(20));
        assert_eq!(array_len(&enc(vec![0u8; 70000])), Some(70000));
    }

    #[test]
    fn positional_fast_path() {
        let p = params(&["a", "b"]);
        assert_eq!(fit(Some(&p), &enc((1, 2)), None).unwrap(), None);
        let (a, b): (i64, i64) = decode_args(&enc((1, 2))).unwrap();
        assert_eq!((a, b), (1, 2));
    }

    #[test]
    fn keywords_are_reordered() {
        let p = params(&["a", "b"]);
        let mut kw = std::collections::BTreeMap::new();
        kw.insert("b", 2);
        kw.insert("a", 1);
        let fitted = fit(Some(&p), &enc(&kw), None).unwrap().unwrap();
        let (a, b): (i64, i64) = decode_args(&fitted).unwrap();
        assert_eq!((a, b), (1, 2));
        // positional plus keyword
        let mut kw = std::collections::BTreeMap::new();
        kw.insert("b", 5);
        let fitted = fit(Some(&p), &enc((4,)), Some(&enc(&kw))).unwrap().unwrap();
        assert_eq!(decode_args::<(i64, i64)>(&fitted).unwrap(), (4, 5));
    }

    #[test]
    fn errors_name_the_problem() {
        let p = params(&["a", "b"]);
        let mut kw = std::collections::BTreeMap::new();
        kw.insert("c", 2);
        let e = fit(Some(&p), &enc(()), Some(&enc(&kw))).unwrap_err();
        assert_eq!(e.message, "unknown argument `c`");
        assert_eq!(e.expected, "(a: i64, b: i64)");
        let e = fit(Some(&p), &enc((1, 2, 3)), None).unwrap_err();
        assert_eq!(e.message, "takes 2 arguments, got 3 positional");
        let mut kw = std::collections::BTreeMap::new();
        kw.insert("a", 2);
        let e = fit(Some(&p), &enc((1,)), Some(&enc(&kw))).unwrap_err();
        assert!(e.message.contains("both by position and by name"));
        assert_eq!(missing(&p, &enc((1,)), None), vec!["b".to_string()]);
    }

    #[test]
    fn optional_trailing_parameter_may_be_omitted() {
        let p = params(&["a", "b"]);
        let fitted = fit(Some(&p), &enc((1,)), None).unwrap().unwrap();
        let (a, b): (i64, Option<i64>) = decode_args(&fitted).unwrap();
        assert_eq!((a, b), (1, None));
    }

    #[test]
    fn single_value_and_empty() {
        let (s,): (String,) = decode_args(&enc("hi")).unwrap();
        assert_eq!(s, "hi");
        let () = decode_args(&enc(())).unwrap();
        let () = decode_args(&[]).unwrap();
        let () = decode_args(&enc(Vec::<u8>::new())).unwrap();
    }

    #[test]
    fn wrong_types_are_bad_arguments() {
        let e = decode_args::<(i64,)>(&enc(("x",))).unwrap_err();
        assert_eq!(e.kind, crate::proto::wire::FailureKind::BadArguments);
    }
}
