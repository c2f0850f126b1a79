#[mpreg::register]
fn f(s: &str) -> usize {
    s.len()
}

fn main() {}
