//! Every option, on every supported kind of function. Compiling is the test.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Point {
    x: f64,
    y: f64,
}

/// Sync, plain return, every option.
#[mpreg::register(
    name = "train",
    resources = ["gpu", "dataset-1"],
    visibility = "host",
    blocking
)]
fn train_model(model: String, mut epochs: u32, weights: HashMap<String, Vec<f32>>) -> Vec<f32> {
    epochs += 1;
    let _ = (model, epochs);
    weights.into_values().flatten().collect()
}

/// Async, Result-returning, options in another order.
#[mpreg::register(visibility = "node", name = "fetch", resources = [])]
async fn fetch_point(id: u64) -> Result<Point, String> {
    if id == 0 {
        return Err("no such point".to_string());
    }
    Ok(Point { x: 1.0, y: 2.0 })
}

/// Sync, Result through a module path, explicit `blocking = false`.
#[mpreg::register(blocking = true, visibility = "network")]
fn read_config(path: std::path::PathBuf) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

#[mpreg::register(blocking = false)]
fn not_blocking(flag: bool) -> bool {
    !flag
}

/// Zero parameters, no return type.
#[mpreg::register]
fn ping() {}

/// Zero parameters, async.
#[mpreg::register(name = "version")]
async fn version() -> String {
    env!("CARGO_PKG_NAME").to_string()
}

/// A raw identifier: registered as `type`.
#[mpreg::register]
fn r#type(r#in: Option<Point>, tuple: (u8, String), bytes: [u8; 4]) -> Option<(f64, u8)> {
    let _ = bytes;
    r#in.map(|p| (p.x + p.y, tuple.0))
}

/// A `Result` alias from another crate: detected by its last segment.
#[mpreg::register]
async fn parse_number(text: String) -> Result<i64, std::num::ParseIntError> {
    text.parse()
}

/// Registrations in a nested module, with a private function.
mod nested {
    #[mpreg::register(name = "nested.add")]
    fn add(a: i64, b: i64) -> i64 {
        a + b
    }

    #[mpreg::register(name = "nested.unit")]
    pub(crate) fn unit() -> () {}
}

/// A deprecated function may still be registered without warnings.
#[deprecated = "use ping"]
#[mpreg::register(name = "old_ping")]
fn old_ping() {}

/// A function compiled out by `cfg`: its registration must disappear with it.
#[cfg(any())]
#[mpreg::register]
fn never_compiled(x: u32) -> u32 {
    x
}

#[mpreg::register]
#[cfg(any())]
fn never_compiled_either(x: u32) -> u32 {
    x
}

/// Types coming from `macro_rules!` fragments (wrapped in invisible groups).
macro_rules! registered {
    ($name:ident, $t:ty, $r:ty) => {
        #[mpreg::register]
        fn $name(value: $t) -> $r {
            Ok(value)
        }
    };
}
registered!(from_macro, u16, Result<u16, String>);

fn main() {
    // Registered functions stay ordinary, callable functions.
    ping();
    assert!(not_blocking(false));
    assert_eq!(r#type(None, (1, String::new()), [0; 4]), None);
}
