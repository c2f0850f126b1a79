#[mpreg::register]
struct Config {
    port: u16,
}

fn main() {}
