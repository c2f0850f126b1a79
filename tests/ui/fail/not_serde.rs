use std::fmt;

struct Opaque;

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Opaque")
    }
}

#[mpreg::register]
fn takes(count: u32, opaque: Opaque) -> u32 {
    let _ = opaque;
    count
}

#[mpreg::register]
async fn returns() -> Opaque {
    Opaque
}

#[mpreg::register]
fn fails() -> Result<u32, Opaque> {
    Err(Opaque)
}

fn main() {}
