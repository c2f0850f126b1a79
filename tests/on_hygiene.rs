//! `#[mpreg::on]` and `#[mpreg::handlers]` expand to absolute paths only: they compile in a
//! module without the prelude, next to items named like what the expansions use.

#![no_implicit_prelude]

mod shadowing {
    #![allow(dead_code, non_camel_case_types)]

    struct Box;
    struct Vec;
    struct Message;
    struct Node;
    struct HandlerFuture;
    struct OnEntry;
    struct inventory;
    struct usize;
    fn __mpreg_on_shim() {}

    #[::mpreg::on("worker:update:60%")]
    pub(crate) async fn free(messages: ::std::vec::Vec<::mpreg::Message>) {
        let _ = messages;
    }

    #[::mpreg::on("a:b:1 | c:d:2")]
    pub(crate) fn with_node(
        node: &::mpreg::Node,
        messages: ::std::vec::Vec<::mpreg::Message>,
    ) -> ::std::result::Result<(), ::std::string::String> {
        let _ = (node, messages);
        ::std::result::Result::Ok(())
    }

    pub(crate) struct State(pub(crate) u32);

    #[::mpreg::handlers]
    impl State {
        #[on("worker:update:2")]
        async fn count(&mut self, messages: ::std::vec::Vec<::mpreg::Message>) {
            self.0 += messages.len() as u32;
        }

        #[on("*:reset:1")]
        fn reset(&mut self, _messages: ::std::vec::Vec<::mpreg::Message>) {
            self.0 = 0;
        }
    }
}

#[test]
fn expansions_compile_without_the_prelude() {
    use ::mpreg::Handlers;
    let names: ::std::vec::Vec<(&str, &str)> = shadowing::State::conditions();
    ::std::assert_eq!(
        names,
        ::std::vec![
            ("State::count", "worker:update:2"),
            ("State::reset", "*:reset:1")
        ]
    );
    let _ = shadowing::State(0);
}
