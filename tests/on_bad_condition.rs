//! A `#[mpreg::on]` condition that has the right shape but does not parse makes every node
//! start fail, naming the function, where it is, and the bad part.

mod support;

#[mpreg::on("worker:update:0")]
fn never(_messages: Vec<mpreg::Message>) {}

#[tokio::test]
async fn node_start_fails_naming_the_handler_and_the_bad_part() {
    let e = support::local("n").start().await.unwrap_err().to_string();
    assert_eq!(
        e,
        "handler `on_bad_condition::never (tests/on_bad_condition.rs:6)`: bad condition \
         \"worker:update:0\": amount `0` must be at least 1 (column 15)"
    );
}
