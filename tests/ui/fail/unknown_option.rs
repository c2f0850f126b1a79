#[mpreg::register(name = "f", timeout = 5)]
fn f() {}

fn main() {}
