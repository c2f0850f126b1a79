//! A node that serves text functions and uses the calculator's functions by name.
//! See `calculator.rs` for how to run the pair.

/// Sync function used by the calculator's `describe`.
#[mpreg::register]
fn shout(s: String) -> String {
    format!("{}!", s.to_uppercase())
}

/// Fans out to the calculator's `slow_square` and sums the results.
#[mpreg::register]
async fn sum_of_squares(xs: Vec<i64>) -> mpreg::Result<i64> {
    let mut total = 0;
    for x in xs {
        total += mpreg::call::<i64>("slow_square", (x, 0)).await?;
    }
    Ok(total)
}

#[tokio::main]
async fn main() -> mpreg::Result<()> {
    mpreg::init_logging();
    mpreg::serve().await
}
