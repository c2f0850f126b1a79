use std::borrow::Cow;

#[mpreg::register]
fn f<'a>(words: Vec<&'a str>, text: Cow<'a, str>, bytes: &mut [u8]) -> &'static str {
    let _ = (words, text, bytes);
    ""
}

fn main() {}
