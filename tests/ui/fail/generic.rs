#[mpreg::register]
fn f<T>(x: T) -> T {
    x
}

#[mpreg::register]
fn g(x: u32) -> u32
where
    u32: Copy,
{
    x
}

fn main() {}
