//! Argument errors a person can act on (issue #14 item 2): they name the parameter and say
//! what was expected and what came, in serde's words rather than MessagePack's, and bytes
//! that are not one MessagePack value are refused rather than read as nothing.

mod support;

use bytes::Bytes;
use mpreg::{Function, Node};

async fn pair() -> (Node, Node) {
    let a = support::local("adder");
    let a =
        a.function(Function::new("add", |(a, b): (i64, i64)| a + b).params(["a: i64", "b: i64"]));
    support::pair(a, support::local("caller")).await
}

async fn error_of(b: &Node, args: Bytes, kwargs: Option<Bytes>) -> String {
    let r = b.request("add").raw_args(args, kwargs).send::<i64>().await;
    let e = r.expect_err("bad arguments must fail");
    assert_eq!(e.variant(), "BadArguments", "{e}");
    let text = e.to_string();
    assert!(
        !text.contains("msgpack") && !text.contains("marker"),
        "{text}"
    );
    assert!(text.contains("add(a: i64, b: i64)"), "no signature: {text}");
    text
}

fn enc(v: impl serde::Serialize) -> Bytes {
    Bytes::from(rmp_serde::to_vec_named(&v).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_parameter_and_the_values() {
    let (_a, b) = pair().await;
    let e = error_of(&b, enc(("x", 2)), None).await;
    assert!(e.contains("`a`: expected i64, got string \"x\""), "{e}");
    let e = error_of(&b, enc((1, 1.5)), None).await;
    assert!(
        e.contains("`b`: expected i64, got floating point `1.5`"),
        "{e}"
    );
    let kw = enc(
        [("a", mpreg::Value::from(1)), ("b", mpreg::Value::from("y"))]
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    );
    let e = error_of(&b, enc(()), Some(kw)).await;
    assert!(e.contains("`b`: expected i64, got string \"y\""), "{e}");
    // A map where positionals were expected.
    let map = [("a", 1), ("b", 2)]
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>();
    let e = error_of(&b, enc((map, 2)), None).await;
    assert!(e.contains("`a`: expected i64, got map"), "{e}");
    // The right arguments still work.
    assert_eq!(b.call::<i64>("add", (2, 3)).await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_messagepack_are_refused() {
    // The built-in `echo(x)` takes any value: junk must not pass as one.
    let (_a, b) = pair().await;
    // nil followed by junk, and a truncated string.
    for junk in [
        &[0xc0, 0x01, 0x02][..],
        &[0x92, 0x01][..],
        &[0xa5, b'h', b'i'][..],
    ] {
        let r = b
            .request("echo")
            .raw_args(Bytes::copy_from_slice(junk), None)
            .send::<mpreg::Value>()
            .await;
        let e = r.expect_err(&format!("{junk:x?} must not be answered"));
        assert_eq!(e.variant(), "BadArguments", "{junk:x?}: {e}");
        assert!(e.to_string().contains("MessagePack"), "{junk:x?}: {e}");
    }
}
