//! zenoh: peer-mode sessions with multicast and gossip scouting off, the listening side on
//! `tcp/127.0.0.1:PORT`, the other connecting to it (and listening nowhere). RPC is a
//! queryable answering `get` with the query's payload; pub/sub is a publisher with the
//! default congestion control (drop) and a callback subscriber.

use std::sync::Arc;

use zenoh::query::ConsolidationMode;
use zenoh::{Config, Session, Wait};

use crate::child::free_port;
use crate::pubsub::Sink;
use crate::rpc::{Caller, Guard};

const ECHO_KEY: &str = "peers/echo";
const DATA_KEY: &str = "peers/data";

fn err(what: &str) -> impl Fn(zenoh::Error) -> String + '_ {
    move |e| format!("zenoh {what}: {e}")
}

/// Loopback-only configuration: listens on `listen` or connects to `connect`.
fn config(listen: Option<u16>, connect: Option<&str>) -> Result<Config, String> {
    let mut c = Config::default();
    let listen = listen.map_or("[]".to_string(), |p| format!(r#"["tcp/127.0.0.1:{p}"]"#));
    let connect = connect.map_or("[]".to_string(), |a| format!(r#"["tcp/{a}"]"#));
    for (k, v) in [
        ("mode", r#""peer""#),
        ("scouting/multicast/enabled", "false"),
        ("scouting/gossip/enabled", "false"),
        ("listen/endpoints", listen.as_str()),
        ("connect/endpoints", connect.as_str()),
    ] {
        c.insert_json5(k, v)
            .map_err(|e| format!("zenoh config {k}: {e}"))?;
    }
    Ok(c)
}

/// A listening session: it and its address.
async fn listening() -> Result<(Session, String), String> {
    let port = free_port()?;
    let session = zenoh::open(config(Some(port), None)?)
        .await
        .map_err(err("open"))?;
    Ok((session, format!("127.0.0.1:{port}")))
}

async fn connecting(addr: &str) -> Result<Session, String> {
    zenoh::open(config(None, Some(addr))?)
        .await
        .map_err(err("open"))
}

// ----- RPC ------------------------------------------------------------------------------

pub async fn serve_rpc() -> Result<(String, Guard), String> {
    let (session, addr) = listening().await?;
    let queryable = session
        .declare_queryable(ECHO_KEY)
        .callback(|q| {
            let payload = q
                .payload()
                .map(|p| p.to_bytes().into_owned())
                .unwrap_or_default();
            if let Err(e) = q.reply(q.key_expr().clone(), payload).wait() {
                eprintln!("zenoh queryable: {e}");
            }
        })
        .await
        .map_err(err("declare_queryable"))?;
    Ok((addr, Box::new((session, queryable))))
}

#[derive(Clone)]
pub struct Client(Session);

pub async fn connect_rpc(addr: &str) -> Result<Client, String> {
    let session = connecting(addr).await?;
    // The queryable's declaration reaches us shortly after the session opens: wait for a
    // first answer.
    let c = Client(session);
    for _ in 0..200 {
        if c.call(vec![0; 1]).await.is_ok() {
            return Ok(c);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    Err("zenoh: the queryable never answered".into())
}

impl Caller for Client {
    async fn call(&self, payload: Vec<u8>) -> Result<usize, String> {
        // No consolidation: the reply is handed over as soon as it arrives.
        let replies = self
            .0
            .get(ECHO_KEY)
            .payload(payload)
            .consolidation(ConsolidationMode::None)
            .await
            .map_err(err("get"))?;
        let reply = replies
            .recv_async()
            .await
            .map_err(|_| "zenoh get: no reply".to_string())?;
        let sample = reply
            .result()
            .map_err(|e| format!("zenoh get: error reply {e:?}"))?;
        Ok(sample.payload().len())
    }
}

// ----- pub/sub --------------------------------------------------------------------------

pub async fn subscribe(sink: Arc<Sink>) -> Result<(String, Guard), String> {
    let (session, addr) = listening().await?;
    let subscriber = session
        .declare_subscriber(DATA_KEY)
        .callback(move |sample| sink.on_message(&sample.payload().to_bytes()))
        .await
        .map_err(err("declare_subscriber"))?;
    Ok((addr, Box::new((session, subscriber))))
}

pub struct Publisher {
    publisher: zenoh::pubsub::Publisher<'static>,
    _session: Session,
}

impl Publisher {
    pub async fn connect(addr: &str) -> Result<Publisher, String> {
        let session = connecting(addr).await?;
        let publisher = session
            .declare_publisher(DATA_KEY)
            .await
            .map_err(err("declare_publisher"))?;
        Ok(Publisher {
            publisher,
            _session: session,
        })
    }

    pub async fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        self.publisher
            .put(payload.to_vec())
            .await
            .map_err(err("put"))
    }
}
