//! Who a served call is for, for the few functions that decide by it (service control):
//! the host of the caller, set around the function's body when it asks
//! ([`Function::wants_caller`](crate::function::Function)). Other calls pay nothing.

use std::future::Future;

tokio::task_local! {
    static CALLER_HOST: Option<String>;
}

/// Runs `body` knowing its caller's host (`None`: a call made in this very process).
pub(crate) async fn scoped<F: Future>(host: Option<String>, body: F) -> F::Output {
    CALLER_HOST.scope(host, body).await
}

/// The host of the caller of the function running in this task: `None` for a call made in
/// this process (or a function that did not ask).
pub(crate) fn host() -> Option<String> {
    CALLER_HOST.try_with(|h| h.clone()).ok().flatten()
}
