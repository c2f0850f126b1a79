//! A node serving arithmetic, run as its own process with `mpreg::serve()`. Together with
//! `frontend.rs` it shows two processes calling each other's functions by name.
//!
//! ```text
//! MPREG_BIND=127.0.0.1 MPREG_PORT=7801 cargo run --example calculator
//! MPREG_BIND=127.0.0.1 MPREG_PORT=7802 MPREG_SEEDS=127.0.0.1:7801 cargo run --example frontend
//! cargo run -- call --seed 127.0.0.1:7801 describe 6      # calculator asks frontend to shout
//! cargo run -- call --seed 127.0.0.1:7802 sum_of_squares '[1,2,3]'
//! ```

use std::time::Duration;

/// Sync function, positional or named arguments.
#[mpreg::register]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Async function that takes its time (used to test node loss mid-call).
#[mpreg::register]
async fn slow_square(x: i64, ms: u64) -> i64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    x * x
}

/// `Err` reaches the caller as a remote error with this message.
#[mpreg::register]
fn divide(a: f64, b: f64) -> Result<f64, String> {
    if b == 0.0 {
        Err(format!("cannot divide {a} by zero"))
    } else {
        Ok(a / b)
    }
}

/// Calls `shout`, which only the frontend process serves.
#[mpreg::register]
async fn describe(x: i64) -> mpreg::Result<String> {
    let parity = if x % 2 == 0 { "even" } else { "odd" };
    mpreg::call("shout", (format!("{x} is {parity}"),)).await
}

#[tokio::main]
async fn main() -> mpreg::Result<()> {
    mpreg::init_logging();
    mpreg::serve().await
}
