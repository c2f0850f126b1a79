#[mpreg::register(name = "a", resources = ["gpu"], name = "b")]
fn f() {}

fn main() {}
