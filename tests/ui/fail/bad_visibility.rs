#[mpreg::register(visibility = "public")]
fn f() {}

fn main() {}
