#[mpreg::register(name = f, resources = "gpu", visibility = node, blocking = "yes")]
fn f() {}

#[mpreg::register(name = "", resources = ["ok", 3, ""])]
fn g() {}

fn main() {}
