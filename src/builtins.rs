//! Functions every `mpreg serve` node offers, as MPREG's servers do.

use rmpv::Value;

use crate::function::Function;

/// `echo(x) -> x` and `echos(xs..) -> [xs..]`.
pub(crate) fn functions() -> Vec<Function> {
    vec![
        Function::new("echo", |(x,): (Value,)| x).params(["x: any"]),
        Function::variadic("echos", |xs: Vec<Value>| Ok(Value::Array(xs))),
    ]
}
