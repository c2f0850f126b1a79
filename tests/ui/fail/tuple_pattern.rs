#[mpreg::register]
fn f((a, b): (u32, u32), _: u8, ref c: String) -> u32 {
    let _ = c;
    a + b
}

fn main() {}
