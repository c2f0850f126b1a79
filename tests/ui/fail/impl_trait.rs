#[mpreg::register]
fn f(x: impl Into<String>) -> String {
    x.into()
}

#[mpreg::register]
fn g(n: u32) -> impl Clone {
    n
}

fn main() {}
