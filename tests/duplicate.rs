//! Two `#[mpreg::register]` functions with one name: node start fails naming both.

mod first {
    #[mpreg::register(name = "twin")]
    pub fn a() -> u8 {
        1
    }
}

mod second {
    #[mpreg::register(name = "twin")]
    pub fn b() -> u8 {
        2
    }
}

#[tokio::test]
async fn duplicate_link_time_names_fail_start_naming_both() {
    // Confined to loopback with discovery off, although start fails before any network.
    let e = mpreg::Node::builder()
        .interfaces(["lo"])
        .mdns(false)
        .beacon(false)
        .listen(false)
        .start()
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, mpreg::Error::DuplicateFunction { .. }), "{msg}");
    assert!(
        msg.starts_with("duplicate function `twin`: registered by duplicate::first"),
        "{msg}"
    );
    assert!(msg.contains("and by duplicate::second"), "{msg}");
    assert!(msg.contains("tests/duplicate.rs:"), "{msg}");
}
