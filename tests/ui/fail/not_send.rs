use std::rc::Rc;

async fn tick() {}

#[mpreg::register]
async fn f(x: u32) -> u32 {
    let shared = Rc::new(x);
    tick().await;
    *shared
}

fn main() {}
