struct Opaque;

#[mpreg::register]
fn f(count: u32, opaque: Opaque) -> u32 {
    let _ = opaque;
    count
}

#[mpreg::register]
fn g() -> Opaque {
    Opaque
}

fn main() {}
