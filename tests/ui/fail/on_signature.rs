use mpreg::Message;

#[mpreg::on("worker:update:60%")]
fn wrong_parameter(_count: u32) {}

#[mpreg::on("worker:update")]
fn not_a_unit(_messages: Vec<Message>) {}

#[mpreg::on(60)]
fn not_a_string(_messages: Vec<Message>) {}

struct State;

#[mpreg::handlers]
impl State {
    #[on("a:b:1")]
    fn no_receiver(_messages: Vec<Message>) {}

    #[on("a:b:1")]
    fn too_many(&mut self, _messages: Vec<Message>, _extra: u8) {}
}

fn main() {}
