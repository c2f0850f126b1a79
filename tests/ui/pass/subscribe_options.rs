//! Every option of #[mpreg::subscribe], in either order.

#[mpreg::subscribe("a.*")]
fn plain(_x: u32) {}

#[mpreg::subscribe("a.*", lossless)]
fn lossless(_x: u32) {}

#[mpreg::subscribe("a.*", group = "g", lossless)]
async fn group_then_lossless(_x: u32, _meta: mpreg::PubMeta) {}

#[mpreg::subscribe("a.*", lossless, group = "g",)]
fn lossless_then_group(x: u32) -> Result<u32, String> {
    Ok(x)
}

fn main() {}
