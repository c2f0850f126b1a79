//! A publication's payload: the encoded bytes, or — published in this process — the value
//! itself, handed to local subscribers of the same type without serialization.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

type AnyValue = dyn Any + Send + Sync;

/// Cheap to clone: one per subscriber shares the same bytes or value.
#[derive(Clone)]
pub(crate) enum Payload {
    /// MessagePack, as received from a peer (or encoded for one).
    Encoded(Bytes),
    /// The publisher's value, in this process.
    Local(Arc<LocalValue>),
}

/// A value published in this process, with the type-specific operations captured where the
/// type was known (at `publish`), so subscribers need not be `Clone` themselves.
pub(crate) struct LocalValue {
    value: Box<AnyValue>,
    clone: fn(&AnyValue) -> Box<dyn Any + Send>,
    encode: fn(&AnyValue) -> Result<Bytes, String>,
    /// Encoded at most once, when a remote or differently typed subscriber needs bytes.
    encoded: OnceLock<Result<Bytes, String>>,
}

fn clone_as<T: Clone + Send + 'static>(v: &AnyValue) -> Box<dyn Any + Send> {
    // The function is only ever paired with a value of type T (see `Payload::local`).
    Box::new(v.downcast_ref::<T>().expect("payload type").clone())
}

fn encode_as<T: Serialize + 'static>(v: &AnyValue) -> Result<Bytes, String> {
    let v = v.downcast_ref::<T>().expect("payload type");
    rmp_serde::to_vec_named(v)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// A small payload's encoding, kept inline (on the publishing task's stack) up to this
/// many bytes and on the heap past them.
pub(crate) type Inline = smallvec::SmallVec<[u8; 64]>;

/// A value about to be published: copied for local subscribers, or encoded for peers only,
/// whichever the publication needs (decided after finding its subscribers).
pub(crate) trait Source: Send + Sync {
    /// A payload holding a copy of the value (local subscribers, and bytes on demand).
    fn local(&self) -> Payload;
    /// The MessagePack encoding alone (no local subscriber: no copy of the value),
    /// appended to `out`.
    fn encode_into(&self, out: &mut Inline) -> Result<(), String>;
}

impl<T: Serialize + Clone + Send + Sync + 'static> Source for T {
    fn local(&self) -> Payload {
        Payload::local(self)
    }
    fn encode_into(&self, out: &mut Inline) -> Result<(), String> {
        rmp_serde::encode::write_named(out, self).map_err(|e| e.to_string())
    }
}

impl Payload {
    /// Keeps a copy of `value` for local subscribers; bytes are made only if needed.
    pub(crate) fn local<T>(value: &T) -> Self
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        Payload::Local(Arc::new(LocalValue {
            value: Box::new(value.clone()),
            clone: clone_as::<T>,
            encode: encode_as::<T>,
            encoded: OnceLock::new(),
        }))
    }

    /// The MessagePack encoding (computed once for a local value).
    pub(crate) fn bytes(&self) -> Result<Bytes, String> {
        match self {
            Payload::Encoded(b) => Ok(b.clone()),
            Payload::Local(l) => l.encoded.get_or_init(|| (l.encode)(&*l.value)).clone(),
        }
    }

    /// The payload as a `T`: the published value itself when it is one (no serialization),
    /// else decoded from MessagePack.
    pub(crate) fn decode<T: DeserializeOwned + 'static>(&self) -> Result<T, String> {
        if let Payload::Local(l) = self {
            if l.value.is::<T>() {
                if let Ok(v) = (l.clone)(&*l.value).downcast::<T>() {
                    return Ok(*v);
                }
            }
        }
        let bytes = self.bytes()?;
        rmp_serde::from_slice(&bytes).map_err(|e| e.to_string())
    }

    /// Whether the payload is a value of this process (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn is_local(&self) -> bool {
        matches!(self, Payload::Local(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Temp {
        c: f64,
    }

    #[test]
    fn same_type_is_handed_over_and_others_are_decoded() {
        let p = Payload::local(&Temp { c: 21.5 });
        assert!(p.is_local());
        assert_eq!(p.decode::<Temp>().unwrap(), Temp { c: 21.5 });
        // Another type with the same shape goes through MessagePack.
        let v: rmpv::Value = p.decode().unwrap();
        assert_eq!(v.to_string(), r#"{"c": 21.5}"#);
        let e = p.decode::<String>().unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn encoded_payloads_decode() {
        let p = Payload::Encoded(Bytes::from(rmp_serde::to_vec(&7u32).unwrap()));
        assert_eq!(p.decode::<u64>().unwrap(), 7);
    }
}
