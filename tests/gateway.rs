//! The gateway for other languages (issue #15) on a node's HTTP listener, on loopback:
//! MPREG's client protocol over WebSocket (written as MPREG's Python client sends it),
//! mpreg's roles (pub/sub, functions served from the socket), JSON-RPC 2.0 over HTTP, the
//! bearer token, visibility for gateway callers, and the limits. A caller on another host
//! is tested in `tests/lan` (it needs a second network namespace).
#![cfg(feature = "http")]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mpreg::{Error, Function, Node, NodeBuilder, Visibility};
use serde_json::{json, Value as Json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use support::scratch::Scratch;
use support::{local, wait_until};

/// Longest any single reply is waited for.
const REPLY_WAIT: Duration = Duration::from_secs(15);

/// A gateway node on loopback with `echo`/`echos` and the test functions below.
fn gateway(name: &str) -> NodeBuilder {
    local(name)
        .http("127.0.0.1:0".parse().unwrap())
        .function(Function::new("sub", |(a, b): (i64, i64)| a - b).params(["a: i64", "b: i64"]))
        .function(Function::new("stats", |(xs,): (Vec<i64>,)| {
            json!({"sum": xs.iter().sum::<i64>(), "n": xs.len(), "inner": {"first": xs.first()}})
        }))
        .function(Function::new("blowup", |(n,): (usize,)| "x".repeat(n)))
        .function(Function::new_async("nap", |(ms,): (u64,)| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        }))
}

async fn start(b: NodeBuilder) -> (Node, SocketAddr) {
    let node = b.start().await.expect("start the gateway node");
    let http = node.http_addr().expect("the node has an HTTP listener");
    (node, http)
}

/// A WebSocket client of the gateway.
struct Ws(WebSocketStream<MaybeTlsStream<TcpStream>>);

impl Ws {
    async fn open(http: SocketAddr) -> Ws {
        Ws::open_with(http, "", None)
            .await
            .expect("WebSocket handshake")
    }

    async fn open_with(
        http: SocketAddr,
        query: &str,
        bearer: Option<&str>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let mut req = format!("ws://{http}/{query}").into_client_request()?;
        if let Some(t) = bearer {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Ws(ws))
    }

    async fn send(&mut self, frame: Json) {
        self.send_text(frame.to_string()).await;
    }

    async fn send_text(&mut self, text: String) {
        self.0
            .send(Message::Text(text.into()))
            .await
            .expect("send a frame");
    }

    /// The next JSON frame (text or binary), skipping pings.
    async fn recv(&mut self) -> Json {
        loop {
            let m = tokio::time::timeout(REPLY_WAIT, self.0.next())
                .await
                .expect("a frame within the wait")
                .expect("the socket is open")
                .expect("a valid frame");
            match m {
                Message::Text(t) => return serde_json::from_str(&t).expect("JSON frame"),
                Message::Binary(b) => return serde_json::from_slice(&b).expect("JSON frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Sends `frame` and returns the reply carrying its `u`.
    async fn ask(&mut self, frame: Json) -> Json {
        let u = frame["u"].clone();
        self.send(frame).await;
        let reply = self.recv().await;
        assert_eq!(reply["u"], u, "a reply to another request: {reply}");
        reply
    }
}

/// MPREG's command, with all five fields as its client sends them.
fn cmd(name: &str, fun: &str, args: Json) -> Json {
    json!({"name": name, "fun": fun, "args": args, "kwargs": {}, "locs": []})
}

/// MPREG's request, with a ULID-shaped `u` and a field newer clients add.
fn rpc(u: &str, cmds: Vec<Json>) -> Json {
    json!({"role": "rpc", "cmds": cmds, "u": u, "return_intermediate_results": false})
}

fn error_code(reply: &Json) -> i64 {
    reply["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("an error reply: {reply}"))
}

#[tokio::test]
async fn mpreg_requests_run_as_calls_and_workflows() {
    let (_node, http) = start(gateway("gw-mpreg")).await;
    let mut ws = Ws::open(http).await;

    let r = ws
        .ask(rpc(
            "01M8KGTYGSW2ZHRPNP09Y7JD9W",
            vec![cmd("echo", "echo", json!(["Hello"]))],
        ))
        .await;
    assert_eq!(
        r,
        json!({"r": {"echo": "Hello"}, "error": null, "u": "01M8KGTYGSW2ZHRPNP09Y7JD9W"})
    );
    assert!(r.get("role").is_none(), "replies carry no role");

    // Fields newer MPREG clients add, and any others, are ignored.
    let mut c = cmd("echos", "echos", json!(["a", "b"]));
    c["function_id"] = json!("f-1");
    c["some_future_field"] = json!({"x": 1});
    let r = ws.ask(rpc("u2", vec![c])).await;
    assert_eq!(r["r"], json!({"echos": ["a", "b"]}));

    // Integers stay integers (users build "Total: 100" from them).
    let r = ws
        .ask(rpc("u3", vec![cmd("echo", "echo", json!([100]))]))
        .await;
    assert!(r["r"]["echo"].is_u64(), "{r}");

    // Four steps, each needing the previous one; dotted access into a map result.
    let chain = vec![
        cmd("s1", "stats", json!([[4, 5, 6]])),
        cmd("s2", "sub", json!(["s1.sum", 5])),
        cmd("s3", "sub", json!(["s2", "s1.inner.first"])),
        cmd("s4", "echos", json!(["s3", "s1.n"])),
    ];
    let r = ws.ask(rpc("u4", chain)).await;
    assert_eq!(r["r"], json!({"s4": [6, 3]}), "{r}");

    // Keyword arguments, by the function's parameter names.
    let mut c = cmd("kw", "sub", json!([]));
    c["kwargs"] = json!({"b": 1, "a": 10});
    assert_eq!(ws.ask(rpc("u5", vec![c])).await["r"], json!({"kw": 9}));

    // Unknown command: 1001, with MPREG's details text.
    let r = ws
        .ask(rpc("u6", vec![cmd("x", "no_such_fun", json!([]))]))
        .await;
    assert_eq!(error_code(&r), 1001, "{r}");
    assert_eq!(r["error"]["details"], "Command not found: no_such_fun");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("offered neither by this node"),
        "{message}"
    );
    assert_eq!(r["r"], Json::Null);
    let r = ws
        .ask(rpc(
            "u7",
            vec![
                cmd("a", "echo", json!([1])),
                cmd("b", "no_such_fun", json!(["a"])),
            ],
        ))
        .await;
    assert_eq!(error_code(&r), 1001, "{r}");

    // A failing step: 1003, naming the command.
    let r = ws
        .ask(rpc("u8", vec![cmd("bad", "sub", json!(["x", 1]))]))
        .await;
    assert_eq!(error_code(&r), 1003, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("sub"),
        "{r}"
    );

    // Not understood: 1000, with the `u` when it could be read.
    let r = ws.ask(json!({"role": "teleport", "u": "u9"})).await;
    assert_eq!(error_code(&r), 1000);
    ws.send_text("{not json".into()).await;
    let r = ws.recv().await;
    assert_eq!((error_code(&r), r["u"].clone()), (1000, Json::Null), "{r}");
    ws.send(json!({"role": "rpc", "cmds": []})).await;
    assert_eq!(error_code(&ws.recv().await), 1000);

    // Binary frames are read too.
    ws.0.send(Message::Binary(
        rpc("u10", vec![cmd("echo", "echo", json!(["bin"]))])
            .to_string()
            .into_bytes()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(ws.recv().await["r"]["echo"], "bin");
}

#[tokio::test]
async fn pings_and_the_close_handshake_are_answered_promptly() {
    let (_node, http) = start(gateway("gw-ping")).await;
    let mut ws = Ws::open(http).await;
    // A request in flight does not hold up the pong.
    ws.send(rpc("slow", vec![cmd("nap", "nap", json!([2000]))]))
        .await;
    let sent = std::time::Instant::now();
    ws.0.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(REPLY_WAIT, ws.0.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(b"are you there".to_vec().into()));
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "pong after {:?}",
        sent.elapsed()
    );
    let sent = std::time::Instant::now();
    ws.0.send(Message::Close(None)).await.unwrap();
    let answer = tokio::time::timeout(REPLY_WAIT, async {
        loop {
            match ws.0.next().await {
                Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => continue,
                _ => return false,
            }
        }
    })
    .await
    .unwrap();
    assert!(answer, "the server answers the close frame");
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "close after {:?}",
        sent.elapsed()
    );
}

#[tokio::test]
async fn twenty_requests_on_one_socket_are_answered_out_of_order() {
    let (_node, http) = start(gateway("gw-order")).await;
    let mut ws = Ws::open(http).await;
    // The first sent sleeps longest.
    for i in 0..20u64 {
        let naps = cmd("nap", "nap", json!([400 - 20 * i]));
        ws.send(rpc(&format!("req-{i}"), vec![naps])).await;
    }
    let mut order = Vec::new();
    for _ in 0..20 {
        let r = ws.recv().await;
        let u = r["u"].as_str().unwrap().to_string();
        let i: u64 = u.trim_start_matches("req-").parse().unwrap();
        assert_eq!(r["r"]["nap"], json!(400 - 20 * i), "{r}");
        order.push(i);
    }
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..20).collect::<Vec<_>>(),
        "every request answered once"
    );
    assert_ne!(order, sorted, "replies came in the order sent: {order:?}");
}

#[tokio::test]
async fn a_client_leaving_mid_call_leaves_the_node_healthy() {
    let (node, http) = start(gateway("gw-leave")).await;
    for _ in 0..3 {
        let mut ws = Ws::open(http).await;
        ws.send(rpc("slow", vec![cmd("nap", "nap", json!([3000]))]))
            .await;
        ws.send(json!({"role": "subscribe", "u": "s", "patterns": ["t.*"]}))
            .await;
        // Gone without a close handshake.
        drop(ws);
    }
    let mut ws = Ws::open(http).await;
    let r = ws
        .ask(rpc(
            "after",
            vec![cmd("echo", "echo", json!(["still here"]))],
        ))
        .await;
    assert_eq!(r["r"]["echo"], "still here");
    let reply = post(
        http,
        &json!({"jsonrpc": "2.0", "method": "echo", "params": [1], "id": 1}).to_string(),
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    // The abandoned calls were cancelled, not left running.
    let nap = |n: &Node| n.metrics().functions.get("nap").map(|f| f.in_flight);
    wait_until(Duration::from_secs(10), || nap(&node) == Some(0)).await;
}

#[tokio::test]
async fn functions_registered_from_a_socket_serve_the_cluster_until_it_closes() {
    let (gw, http) = start(gateway("gw-serve").call_timeout(Duration::from_secs(1))).await;
    let caller = local("gw-serve-caller")
        .seed(gw.addr().unwrap())
        .start()
        .await
        .unwrap();
    let mut ws = Ws::open(http).await;
    let r = ws
        .ask(json!({"role": "register", "u": "r1", "max_in_flight": 2,
            "functions": [{"name": "ws_double", "params": ["x"]}, {"name": "ws_silent"}]}))
        .await;
    assert_eq!(
        r["r"],
        json!({"registered": ["ws_double", "ws_silent"]}),
        "{r}"
    );
    // A name the node already has is refused.
    let r = ws
        .ask(json!({"role": "register", "u": "r2", "functions": [{"name": "echo"}]}))
        .await;
    assert_eq!(error_code(&r), 1003, "{r}");

    caller
        .wait_for_providers("ws_double", 1, Duration::from_secs(10))
        .await
        .unwrap();
    // The socket answers the invokes: one result, one error.
    let answering = tokio::spawn(async move {
        for _ in 0..2 {
            let inv = ws.recv().await;
            assert_eq!(
                (inv["role"].as_str(), inv["fun"].as_str()),
                (Some("invoke"), Some("ws_double")),
                "{inv}"
            );
            // Keyword arguments arrive as the caller sent them (the client binds them).
            let x = inv["args"][0]
                .as_i64()
                .or(inv["kwargs"]["x"].as_i64())
                .unwrap();
            let answer = if x >= 0 {
                json!({"role": "result", "id": inv["id"], "result": x * 2})
            } else {
                json!({"role": "result", "id": inv["id"], "error": "negative input"})
            };
            ws.send(answer).await;
        }
        ws
    });
    let doubled = caller
        .request("ws_double")
        .kwargs(json!({"x": 21}))
        .send::<i64>()
        .await
        .unwrap();
    assert_eq!(doubled.value, 42);
    match caller.call::<i64>("ws_double", (-1,)).await {
        Err(Error::Remote { message, .. }) => {
            assert!(message.contains("negative input"), "{message}")
        }
        other => panic!("expected the client's error, got {other:?}"),
    }
    let mut ws = answering.await.unwrap();

    // A socket that never answers: the call fails at the gateway's deadline; beyond
    // max_in_flight, callers are refused as busy at once.
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let c = caller.clone();
            tokio::spawn(async move {
                c.request("ws_silent")
                    .args((i,))
                    .timeout(Duration::from_secs(10))
                    .send::<Json>()
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for c in calls {
        outcomes.push(c.await.unwrap());
    }
    let busy = outcomes
        .iter()
        .filter(|o| matches!(o, Err(Error::Busy { .. })))
        .count();
    let timed_out = outcomes
        .iter()
        .filter(|o| {
            matches!(o, Err(Error::Timeout { .. }))
                || matches!(o, Err(e) if e.to_string().contains("did not answer"))
        })
        .count();
    assert_eq!((busy, timed_out), (1, 2), "{outcomes:?}");
    // The invokes were sent; answering late is harmless.
    for _ in 0..2 {
        let inv = ws.recv().await;
        ws.send(json!({"role": "result", "id": inv["id"], "result": "late"}))
            .await;
    }

    // Closing the socket withdraws its functions from the cluster.
    ws.0.close(None).await.unwrap();
    drop(ws);
    let mut last = None;
    let gone = async {
        loop {
            match caller.call::<i64>("ws_double", (1,)).await {
                Err(e @ (Error::UnknownFunction { .. } | Error::NoProvider { .. })) => {
                    last = Some(e);
                    return;
                }
                other => last = Some(other.err().unwrap_or(Error::Usage("answered".into()))),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .unwrap_or_else(|_| panic!("ws_double still callable after the socket closed: {last:?}"));
}

#[tokio::test]
async fn a_saturated_socket_function_is_busy_on_a_lone_node_too() {
    let (_gw, http) = start(gateway("gw-busy")).await;
    let mut server = Ws::open(http).await;
    let r = server
        .ask(json!({"role": "register", "u": "r", "max_in_flight": 1, "functions": [{"name": "hold"}]}))
        .await;
    assert!(r["error"].is_null(), "{r}");
    let mut client = Ws::open(http).await;
    client
        .send(rpc("first", vec![cmd("hold", "hold", json!([]))]))
        .await;
    let inv = server.recv().await;
    assert_eq!(inv["role"], "invoke");
    let r = client
        .ask(rpc("second", vec![cmd("hold", "hold", json!([]))]))
        .await;
    assert_eq!(error_code(&r), 1006, "{r}");
    server
        .send(json!({"role": "result", "id": inv["id"], "result": "done"}))
        .await;
    assert_eq!(client.recv().await["r"]["hold"], "done");
}

#[tokio::test]
async fn subscriptions_push_publications_and_count_what_they_drop() {
    let (gw, http) = start(gateway("gw-sub").sub_queue(16)).await;
    let publisher = local("gw-sub-pub")
        .seed(gw.addr().unwrap())
        .start()
        .await
        .unwrap();
    let mut ws = Ws::open(http).await;
    let r = ws
        .ask(json!({"role": "subscribe", "u": "s1", "patterns": ["sensors.*.temp"]}))
        .await;
    let sid = r["r"]["subscription"]
        .as_str()
        .expect("a subscription id")
        .to_string();
    wait_until(Duration::from_secs(10), || {
        publisher.members().iter().any(|m| m.name == "gw-sub")
    })
    .await;

    // Confirmed: the gateway's subscription acknowledges.
    let c = publisher
        .topic("sensors.a.temp")
        .confirmed(&json!({"c": 21.5, "n": 1}))
        .await
        .unwrap();
    assert_eq!(c.subscribers, 1);
    let m = ws.recv().await;
    assert_eq!(
        m,
        json!({"role": "message", "subscription": sid, "topic": "sensors.a.temp",
               "message": {"c": 21.5, "n": 1}, "dropped": 0})
    );

    // A socket that does not read: its subscription drops the oldest and says how many.
    const N: u64 = 3000;
    for i in 0..N {
        publisher.topic("sensors.b.temp").publish(&i).await.unwrap();
    }
    let mut received = Vec::new();
    let mut dropped = 0;
    while received.len() as u64 + dropped < N {
        let m = ws.recv().await;
        dropped += m["dropped"].as_u64().unwrap();
        received.push(m["message"].as_u64().unwrap());
    }
    println!("figure: pushed={} dropped={dropped}", received.len());
    assert_eq!(
        received.len() as u64 + dropped,
        N,
        "every publication delivered or counted"
    );
    assert!(received.windows(2).all(|w| w[0] < w[1]), "in order");
    assert_eq!(received.last(), Some(&(N - 1)), "the newest is kept");

    // Publishing from the socket reaches a Rust subscriber; unsubscribe ends the pushes.
    let mut sub = publisher.subscribe("alerts.*").await.unwrap();
    wait_until(Duration::from_secs(10), || {
        gw.members().iter().any(|m| m.name == "gw-sub-pub")
    })
    .await;
    // A confirmation comes once the subscriber took the publication: read it meanwhile.
    let got = tokio::spawn(async move {
        let p = tokio::time::timeout(REPLY_WAIT, sub.next())
            .await
            .unwrap()
            .unwrap();
        p.payload::<(u8, String)>().unwrap()
    });
    let r = ws
        .ask(json!({"role": "publish", "u": "p1", "topic": "alerts.fire", "message": [1, "x"], "confirm": true}))
        .await;
    assert_eq!(r["r"]["confirmed"], 1, "{r}");
    assert_eq!(got.await.unwrap(), (1, "x".to_string()));
    let r = ws
        .ask(json!({"role": "publish", "u": "p2", "topic": "nobody.listens", "message": 1}))
        .await;
    assert_eq!(r["r"], json!({"nodes": 0}), "{r}");
    let r = ws
        .ask(json!({"role": "unsubscribe", "u": "s2", "subscription": sid}))
        .await;
    assert_eq!(r["r"], true);
    let r = ws
        .ask(json!({"role": "unsubscribe", "u": "s3", "subscription": sid}))
        .await;
    assert_eq!(error_code(&r), 1000, "{r}");
}

#[tokio::test]
async fn visibility_admits_a_loopback_caller_as_this_host_not_this_node() {
    let b = gateway("gw-vis")
        .function(Function::new("host_only", |(): ()| "host").visibility(Visibility::Host))
        .function(Function::new("node_only", |(): ()| "node").visibility(Visibility::Node));
    let (_node, http) = start(b).await;
    let mut ws = Ws::open(http).await;
    let r = ws
        .ask(rpc("h", vec![cmd("host_only", "host_only", json!([]))]))
        .await;
    assert_eq!(r["r"]["host_only"], "host", "{r}");
    let r = ws
        .ask(rpc("n", vec![cmd("node_only", "node_only", json!([]))]))
        .await;
    assert_eq!(error_code(&r), 1003, "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("visib"), "the refusal names visibility: {msg}");
    let reply = post(
        http,
        r#"{"jsonrpc":"2.0","method":"node_only","id":7}"#,
        None,
    )
    .await;
    let j: Json = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(j["error"]["code"], -32003, "{j}");
}

#[tokio::test]
async fn a_configured_token_is_required() {
    let dir = tempdir();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let (_node, http) = start(gateway("gw-token").http_token_file(&token_file)).await;
    let body = r#"{"jsonrpc":"2.0","method":"echo","params":["t"],"id":1}"#;
    assert_eq!(post(http, body, None).await.status, 401);
    assert_eq!(post(http, body, Some("wrong")).await.status, 401);
    let ok = post(http, body, Some("s3cret-token")).await;
    assert_eq!(
        (ok.status, ok.body.contains("\"result\":\"t\"")),
        (200, true),
        "{ok:?}"
    );
    assert!(
        Ws::open_with(http, "", None).await.is_err(),
        "WebSocket without the token"
    );
    let mut ws = Ws::open_with(http, "", Some("s3cret-token")).await.unwrap();
    assert_eq!(
        ws.ask(rpc("a", vec![cmd("echo", "echo", json!([1]))]))
            .await["r"]["echo"],
        1
    );
    let mut ws = Ws::open_with(http, "?token=s3cret-token", None)
        .await
        .unwrap();
    assert_eq!(
        ws.ask(rpc("b", vec![cmd("echo", "echo", json!([2]))]))
            .await["r"]["echo"],
        2
    );
}

#[tokio::test]
async fn a_non_loopback_gateway_of_a_cluster_with_a_secret_needs_a_token() {
    let dir = tempdir();
    let secret = dir.join("secret");
    std::fs::write(&secret, "cluster secret").unwrap();
    // Refused before anything binds: no port is opened on the network.
    let err = local("gw-open")
        .secret_file(&secret)
        .http("0.0.0.0:0".parse().unwrap())
        .start()
        .await
        .expect_err("a tokenless network gateway must not start");
    let text = err.to_string();
    assert!(text.contains("--http-token-file"), "{text}");
}

#[tokio::test]
async fn jsonrpc_calls_batches_notifications_and_errors() {
    let pokes = Arc::new(AtomicU64::new(0));
    let p = pokes.clone();
    let b = gateway("gw-jsonrpc").function(Function::new("poke", move |(): ()| {
        p.fetch_add(1, Ordering::SeqCst);
    }));
    let (_node, http) = start(b).await;
    let ask = |body: String| async move {
        let r = post(http, &body, None).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.content_type.starts_with("application/json"), "{r:?}");
        serde_json::from_str::<Json>(&r.body).unwrap()
    };
    let j = ask(r#"{"jsonrpc":"2.0","method":"sub","params":[5,2],"id":1}"#.into()).await;
    assert_eq!(j, json!({"jsonrpc": "2.0", "result": 3, "id": 1}));
    let j =
        ask(r#"{"jsonrpc":"2.0","method":"sub","params":{"b":2,"a":10},"id":"x"}"#.into()).await;
    assert_eq!(j, json!({"jsonrpc": "2.0", "result": 8, "id": "x"}));
    // The extension member: a deadline shorter than the call.
    let j = ask(
        r#"{"jsonrpc":"2.0","method":"nap","params":[3000],"id":2,"mpreg":{"timeout":0.2}}"#.into(),
    )
    .await;
    assert_eq!(j["error"]["code"], -32001, "{j}");

    // A notification runs and gets no answer.
    let r = post(http, r#"{"jsonrpc":"2.0","method":"poke"}"#, None).await;
    assert_eq!(r.status, 204);
    wait_until(Duration::from_secs(5), || pokes.load(Ordering::SeqCst) == 1).await;

    // A batch: answers for requests only, errors in place.
    let j = ask(r#"[{"jsonrpc":"2.0","method":"echo","params":["a"],"id":1},
            {"jsonrpc":"2.0","method":"poke"},
            {"jsonrpc":"2.0","method":"missing_fn","id":2},
            {"jsonrpc":"2.0","method":1,"id":3}]"#
        .into())
    .await;
    let by_id: HashMap<String, Json> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].to_string(), a.clone()))
        .collect();
    assert_eq!(by_id.len(), 3, "{j}");
    assert_eq!(by_id["1"]["result"], "a");
    assert_eq!(by_id["2"]["error"]["code"], -32601);
    assert_eq!(by_id["2"]["error"]["data"]["code"], 1001);
    assert_eq!(by_id["3"]["error"]["code"], -32600);

    // The standard errors.
    let j = ask("{oops".into()).await;
    assert_eq!(
        (j["error"]["code"].clone(), j["id"].clone()),
        (json!(-32700), Json::Null)
    );
    let j = ask(r#"{"method":"echo","id":4}"#.into()).await;
    assert_eq!(j["error"]["code"], -32600);
    let j = ask("[]".into()).await;
    assert_eq!(j["error"]["code"], -32600);
    let j = ask(r#"{"jsonrpc":"2.0","method":"missing_fn","id":5}"#.into()).await;
    assert_eq!(j["error"]["code"], -32601);
    let j = ask(r#"{"jsonrpc":"2.0","method":"sub","params":["x",1],"id":6}"#.into()).await;
    assert_eq!(j["error"]["code"], -32602, "{j}");
    let j = ask(r#"{"jsonrpc":"2.0","method":"sub","params":"x","id":7}"#.into()).await;
    assert_eq!(j["error"]["code"], -32602, "{j}");

    // Bodies are bounded.
    let big = format!(
        r#"{{"jsonrpc":"2.0","method":"echo","params":["{}"],"id":8}}"#,
        "x".repeat(2 << 20)
    );
    assert_eq!(post(http, &big, None).await.status, 413);
}

#[tokio::test]
async fn frames_replies_and_requests_in_flight_are_bounded() {
    let (_node, http) = start(gateway("gw-limits")).await;

    // More than 256 requests at once on one socket: the excess is answered busy at once
    // (each takes 4 s, far longer than sending them all).
    let mut ws = Ws::open(http).await;
    for i in 0..300 {
        ws.send(rpc(
            &format!("n{i}"),
            vec![cmd("nap", "nap", json!([4000]))],
        ))
        .await;
    }
    let (mut ok, mut busy) = (0, 0);
    for _ in 0..300 {
        let r = ws.recv().await;
        match r["error"]["code"].as_i64() {
            None => ok += 1,
            Some(1006) => busy += 1,
            Some(c) => panic!("unexpected error {c}: {r}"),
        }
    }
    assert_eq!((ok, busy), (256, 44));

    // A reply over 1 MiB becomes an error saying so; the socket stays usable.
    let r = ws
        .ask(rpc(
            "big",
            vec![cmd("blowup", "blowup", json!([1_100_000]))],
        ))
        .await;
    assert_eq!(error_code(&r), 1002, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("exceeds"),
        "{r}"
    );
    let r = ws
        .ask(rpc("small", vec![cmd("echo", "echo", json!(["ok"]))]))
        .await;
    assert_eq!(r["r"]["echo"], "ok");

    // A frame over 1 MiB closes the socket with 1009 (message too big).
    let huge = rpc(
        "huge",
        vec![cmd("echo", "echo", json!(["z".repeat(2 << 20)]))],
    );
    let _ = ws.0.send(Message::Text(huge.to_string().into())).await;
    let closed = tokio::time::timeout(REPLY_WAIT, async {
        loop {
            match ws.0.next().await {
                Some(Ok(Message::Close(Some(f)))) => return Some(u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the socket ends");
    assert_eq!(closed, Some(1009));
}

/// An answer of the HTTP listener.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

/// `POST /` with a JSON body (and a bearer token) over a plain HTTP/1.1 exchange.
async fn post(http: SocketAddr, body: &str, bearer: Option<&str>) -> Reply {
    let mut s = TcpStream::connect(http).await.unwrap();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // A refused body may be cut short by the server: that is its answer.
    let _ = s.write_all(body.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(REPLY_WAIT, s.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Reply {
        status,
        content_type,
        body: body.to_string(),
    }
}

/// A fresh directory for files a test needs, removed when it passes.
fn tempdir() -> Scratch {
    Scratch::new("gw")
}

/// Service control through the gateway: a loopback client counts as this host, so it may
/// start and stop the node's services (`_service_start`, `_service_stop`) like a local
/// `mpreg start` (a client on another host is refused; tests/lan/services.rs).
#[tokio::test]
async fn a_loopback_gateway_client_starts_and_stops_a_service() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let svc = dir.join("services/napper");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(svc.join("run.sh"), "#!/bin/sh\nexec sleep 300\n").unwrap();
    std::fs::set_permissions(svc.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        svc.join("service.toml"),
        "command = \"run.sh\"\nready = \"started\"\n",
    )
    .unwrap();
    let b = gateway("gw-svc")
        .services(true)
        .services_dir(dir.join("services"));
    let (_node, http) = start(b).await;
    let call = |method: &str, id: u32| {
        format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":["napper"],"id":{id}}}"#)
    };
    let reply = post(http, &call("_service_start", 1), None).await;
    let j: Json = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(j["result"]["state"], "running", "{j}");
    assert!(j["result"]["pid"].as_u64().is_some(), "{j}");
    let reply = post(http, &call("_service_stop", 2), None).await;
    let j: Json = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(j["result"]["was_running"], true, "{j}");
    assert_eq!(j["result"]["status"]["state"], "stopped", "{j}");
}

/// The keyring built-ins are refused through the gateway, alone or in a workflow: a gateway
/// client must not install or remove the cluster's keys (issue #18).
#[tokio::test]
async fn the_keyring_is_not_changed_through_the_gateway() {
    let dir = tempdir();
    let secret = dir.join("secret");
    std::fs::write(&secret, "cluster key\n").unwrap();
    let (_node, http) = start(gateway("gw-keys").secret_file(&secret)).await;
    let body = r#"{"jsonrpc":"2.0","method":"_keys_remove","params":["0123456789abcdef"],"id":1}"#;
    let reply = post(http, body, None).await;
    assert!(
        reply.body.contains("not callable through the gateway"),
        "{reply:?}"
    );
    let mut ws = Ws::open(http).await;
    let steps = vec![
        cmd("a", "echo", json!([1])),
        cmd("b", "_keys_install", json!([[1, 2, 3]])),
    ];
    let answer = ws.ask(rpc("w", steps)).await;
    assert!(
        answer
            .to_string()
            .contains("not callable through the gateway"),
        "{answer}"
    );
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "cluster key\n",
        "unchanged"
    );
}
