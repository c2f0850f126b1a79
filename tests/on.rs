//! `#[mpreg::on]` functions are attached to every node the process starts: sync and async,
//! with and without the node, one message feeding several handlers.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use mpreg::{Message, Node};
use support::{local, pair, wait_until};

/// `(handler, receiving node, senders)` of every firing, in order.
static FIRINGS: Mutex<Vec<(&'static str, String, Vec<String>)>> = Mutex::new(Vec::new());

fn record(handler: &'static str, node: &str, messages: &[Message]) {
    let senders = messages.iter().map(|m| m.source.clone()).collect();
    FIRINGS
        .lock()
        .unwrap()
        .push((handler, node.to_string(), senders));
}

#[mpreg::on("pinger:ping:2")]
async fn pinged(node: &Node, messages: Vec<Message>) {
    record("pinged", node.name(), &messages);
}

#[mpreg::on("pinger:ping:1 & pinger:pong:1")]
fn ping_and_pong(messages: Vec<Message>) -> Result<(), String> {
    let node = messages[0].destination.clone();
    record("ping_and_pong", &node, &messages);
    Ok(())
}

#[tokio::test]
async fn link_time_handlers_fire_on_every_node() {
    let (receiver, pinger) = pair(local("receiver"), local("pinger-1")).await;
    assert_eq!(receiver.messaging_stats().handlers.len(), 2);
    pinger.notify("receiver", "ping", 1).await.unwrap();
    pinger.notify("receiver", "ping", 2).await.unwrap();
    pinger.notify("receiver", "pong", 3).await.unwrap();
    wait_until(Duration::from_secs(10), || {
        FIRINGS.lock().unwrap().len() == 2
    })
    .await;
    let mut firings = FIRINGS.lock().unwrap().clone();
    firings.sort();
    let two = vec!["pinger-1".to_string(), "pinger-1".to_string()];
    assert_eq!(
        firings,
        vec![
            ("ping_and_pong", "receiver".to_string(), two.clone()),
            ("pinged", "receiver".to_string(), two),
        ]
    );
    // The second ping was consumed by `pinged` but is still queued for `ping_and_pong`.
    let stats = receiver.messaging_stats();
    let queued: Vec<usize> = stats.handlers.iter().map(|h| h.queued).collect();
    assert_eq!(queued.iter().sum::<usize>(), 1);
    assert!(stats.handlers.iter().all(|h| h.name.starts_with("on::")));
}
