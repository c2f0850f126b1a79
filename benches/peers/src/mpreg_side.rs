//! mpreg: a node serving its built-in `echo` (as benches/rpc.rs), a client node seeded
//! with the server; pub/sub between a publishing node and a subscribing node, the
//! subscription drop-oldest (the default) or lossless. Every node binds 127.0.0.1 with
//! interfaces `lo` only, mDNS and the discovery beacon off.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_bytes::ByteBuf;

use crate::pubsub::{Sink, TOPIC};
use crate::rpc::{Caller, Guard};

fn local_node(name: String) -> mpreg::NodeBuilder {
    mpreg::Node::builder()
        .name(name)
        .bind([127, 0, 0, 1].into())
        .port(0)
        .interfaces(["lo"])
        .mdns(false)
        .beacon(false)
}

fn err(what: &str) -> impl Fn(mpreg::Error) -> String + '_ {
    move |e| format!("mpreg {what}: {e}")
}

fn addr_of(node: &mpreg::Node) -> Result<String, String> {
    Ok(node.addr().ok_or("the node does not listen")?.to_string())
}

/// A client node seeded with `addr`, once connected.
async fn client_of(addr: &str, name: &str) -> Result<mpreg::Node, String> {
    let seed: SocketAddr = addr.parse().map_err(|_| format!("bad address `{addr}`"))?;
    let node = local_node(format!("{name}-{}", std::process::id()))
        .listen(false)
        .builtins(false)
        .seed(seed)
        .start()
        .await
        .map_err(err("start"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.peers().is_empty() {
        if Instant::now() > deadline {
            return Err("mpreg: the client never connected".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(node)
}

// ----- RPC ------------------------------------------------------------------------------

/// A node with the built-in `echo`.
pub async fn serve_rpc() -> Result<(String, Guard), String> {
    let node = local_node("peers-server".into())
        .start()
        .await
        .map_err(err("start"))?;
    Ok((addr_of(&node)?, Box::new(node)))
}

#[derive(Clone)]
pub struct Client(mpreg::Node);

pub async fn connect_rpc(addr: &str) -> Result<Client, String> {
    Ok(Client(client_of(addr, "peers-client").await?))
}

impl Caller for Client {
    async fn call(&self, payload: Vec<u8>) -> Result<usize, String> {
        let payload = ByteBuf::from(payload);
        let reply: ByteBuf = self
            .0
            .call("echo", (&payload,))
            .await
            .map_err(err("call"))?;
        Ok(reply.len())
    }
}

// ----- pub/sub --------------------------------------------------------------------------

/// A node subscribed to [`TOPIC`] with the default queue, feeding `sink`.
pub async fn subscribe(sink: Arc<Sink>, lossless: bool) -> Result<(String, Guard), String> {
    let node = local_node("peers-sub".into())
        .builtins(false)
        .start()
        .await
        .map_err(err("start"))?;
    let sub = node.subscribe(TOPIC);
    let mut sub = if lossless { sub.lossless() } else { sub }
        .await
        .map_err(err("subscribe"))?;
    let task = tokio::spawn(async move {
        while let Some(p) = sub.next().await {
            match p.payload::<ByteBuf>() {
                Ok(b) => sink.on_message(&b),
                Err(e) => eprintln!("mpreg subscriber: {e}"),
            }
        }
    });
    Ok((addr_of(&node)?, Box::new((node, task))))
}

pub struct Publisher(mpreg::Node);

impl Publisher {
    /// A node seeded with the subscriber's, once it knows the subscription.
    pub async fn connect(addr: &str) -> Result<Publisher, String> {
        let node = client_of(addr, "peers-pub").await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let knows = |n: &mpreg::Node| {
            n.members()
                .iter()
                .any(|m| m.subscriptions.iter().any(|s| s == TOPIC))
        };
        while !knows(&node) {
            if Instant::now() > deadline {
                return Err("mpreg: the subscriber's catalog never arrived".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Publisher(node))
    }

    pub async fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        self.0
            .publish(TOPIC, &ByteBuf::from(payload.to_vec()))
            .await
            .map_err(err("publish"))
    }
}
