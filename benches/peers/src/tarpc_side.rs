//! tarpc: a service with one `echo` method, bincode over length-delimited TCP frames
//! (`tarpc::serde_transport`), TCP_NODELAY on both ends like every other system here; the
//! server spawns each request's handler, the client is one connection shared by all
//! callers. RPC only: tarpc has no pub/sub.

use futures_util::StreamExt;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};
use tarpc::{client, context, serde_transport};
use tokio::net::{TcpListener, TcpStream};

use crate::rpc::{Caller, Guard};

#[tarpc::service]
pub trait Echo {
    async fn echo(payload: Vec<u8>) -> Vec<u8>;
}

#[derive(Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: context::Context, payload: Vec<u8>) -> Vec<u8> {
        payload
    }
}

fn io(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("tarpc {what}: {e}")
}

/// Frames over `sock`: a 4-byte length prefix (tarpc's own TCP transport), up to 16 MiB.
fn framed(sock: TcpStream) -> Framed<TcpStream, LengthDelimitedCodec> {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(16 << 20)
        .new_codec();
    Framed::new(sock, codec)
}

pub async fn serve() -> Result<(String, Guard), String> {
    let l = TcpListener::bind("127.0.0.1:0").await.map_err(io("bind"))?;
    let addr = l.local_addr().map_err(io("local_addr"))?.to_string();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            let _ = sock.set_nodelay(true);
            let transport = serde_transport::new(framed(sock), Bincode::default());
            let channel = BaseChannel::with_defaults(transport);
            tokio::spawn(channel.execute(EchoServer.serve()).for_each(|f| async {
                tokio::spawn(f);
            }));
        }
    });
    Ok((addr, Box::new(task)))
}

#[derive(Clone)]
pub struct Client(EchoClient);

pub async fn connect(addr: &str) -> Result<Client, String> {
    let sock = TcpStream::connect(addr).await.map_err(io("connect"))?;
    sock.set_nodelay(true).map_err(io("nodelay"))?;
    let transport = serde_transport::new(framed(sock), Bincode::default());
    Ok(Client(
        EchoClient::new(client::Config::default(), transport).spawn(),
    ))
}

impl Caller for Client {
    async fn call(&self, payload: Vec<u8>) -> Result<usize, String> {
        self.0
            .echo(context::current(), payload)
            .await
            .map(|r| r.len())
            .map_err(|e| format!("tarpc call: {e}"))
    }
}
