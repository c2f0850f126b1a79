#[mpreg::register]
unsafe fn f(x: u32) -> u32 {
    x
}

#[mpreg::register]
extern "C" fn g(x: u32) -> u32 {
    x
}

fn main() {}
