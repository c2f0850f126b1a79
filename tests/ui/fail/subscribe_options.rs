#[mpreg::subscribe("a.*", lossy)]
fn unknown(x: u32) {}

#[mpreg::subscribe("a.*", lossless, lossless)]
fn twice(x: u32) {}

#[mpreg::subscribe("a.*", lossless = true)]
fn valued(x: u32) {}

#[mpreg::subscribe("a.*", group = "g", lossless, group = "h")]
fn group_twice(x: u32) {}

fn main() {}
