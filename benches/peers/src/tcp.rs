//! The raw TCP reference: 4-byte big-endian length + payload frames on one connection.
//! RPC: an echo server that answers every complete frame of a read in one write; the
//! client does ping-pong (1 in flight) and a 256-frame pipelined window. Pub/sub: a stream
//! of frames through a buffered writer, read by a plain loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::clock::quantile_us;
use crate::pubsub::Sink;
use crate::rpc::{Guard, RpcFigures, IN_FLIGHT, PAYLOAD};
use crate::settings::Settings;

const HEADER: usize = 4;

fn io(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("tcp {what}: {e}")
}

async fn listen() -> Result<(TcpListener, String), String> {
    let l = TcpListener::bind("127.0.0.1:0").await.map_err(io("bind"))?;
    let addr = l.local_addr().map_err(io("local_addr"))?.to_string();
    Ok((l, addr))
}

async fn connect(addr: &str) -> Result<TcpStream, String> {
    let sock = TcpStream::connect(addr).await.map_err(io("connect"))?;
    sock.set_nodelay(true).map_err(io("nodelay"))?;
    Ok(sock)
}

// ----- RPC ------------------------------------------------------------------------------

pub async fn serve_rpc() -> Result<(String, Guard), String> {
    let (l, addr) = listen().await?;
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            tokio::spawn(async move {
                if let Err(e) = echo(sock).await {
                    eprintln!("tcp echo server: {e}");
                }
            });
        }
    });
    Ok((addr, Box::new(task)))
}

/// Length of the first frame in `buf` if it is complete.
fn complete_frame(buf: &[u8]) -> Option<usize> {
    let len = u32::from_be_bytes(buf.get(..HEADER)?.try_into().ok()?) as usize;
    (buf.len() >= HEADER + len).then_some(len)
}

async fn read_more(r: &mut OwnedReadHalf, buf: &mut BytesMut) -> std::io::Result<usize> {
    buf.reserve(16 * 1024);
    r.read_buf(buf).await
}

/// Echoes frames back: one read gathers every frame pipelined so far, one write answers
/// them all; a half-close from the client ends it after the last reply.
async fn echo(sock: TcpStream) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let (mut r, mut w) = sock.into_split();
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output = Vec::with_capacity(64 * 1024);
    while read_more(&mut r, &mut input).await? > 0 {
        while let Some(len) = complete_frame(&input) {
            output.extend_from_slice(&input[..HEADER + len]);
            input.advance(HEADER + len);
        }
        if !output.is_empty() {
            w.write_all(&output).await?;
            output.clear();
        }
    }
    Ok(())
}

fn request_frame() -> Vec<u8> {
    let mut f = (PAYLOAD as u32).to_be_bytes().to_vec();
    f.resize(HEADER + PAYLOAD, 0xA5);
    f
}

async fn ping_pong(sock: &mut TcpStream, d: Duration) -> Result<Vec<u64>, String> {
    let frame = request_frame();
    let mut reply = vec![0u8; frame.len()];
    let mut nanos = Vec::new();
    let start = Instant::now();
    let mut t0 = start;
    while t0 < start + d {
        sock.write_all(&frame).await.map_err(io("write"))?;
        sock.read_exact(&mut reply).await.map_err(io("read"))?;
        let t1 = Instant::now();
        nanos.push(t1.duration_since(t0).as_nanos() as u64);
        t0 = t1;
    }
    Ok(nanos)
}

/// `window` requests in flight on a new connection for `d`: a writer tops the window up
/// as replies free slots (one write per batch), a reader counts replies. Requests/s.
async fn pipelined(addr: &str, window: usize, d: Duration) -> Result<f64, String> {
    let (r, w) = connect(addr).await?.into_split();
    let slots = Arc::new(Semaphore::new(window));
    let (sent_tx, sent_rx) = mpsc::unbounded_channel();
    let start = Instant::now();
    let writer = tokio::spawn(pipelined_writer(w, slots.clone(), sent_tx, start + d));
    let reader = tokio::spawn(pipelined_reader(r, slots, sent_rx));
    writer
        .await
        .map_err(|e| e.to_string())?
        .map_err(io("write"))?;
    let replies = reader
        .await
        .map_err(|e| e.to_string())?
        .map_err(io("read"))?;
    Ok(replies as f64 / start.elapsed().as_secs_f64())
}

async fn pipelined_writer(
    mut w: OwnedWriteHalf,
    slots: Arc<Semaphore>,
    sent: mpsc::UnboundedSender<usize>,
    deadline: Instant,
) -> std::io::Result<()> {
    let frame = request_frame();
    let mut batch = Vec::new();
    while Instant::now() < deadline {
        slots.acquire().await.expect("semaphore open").forget();
        let mut n = 1;
        while let Ok(p) = slots.try_acquire() {
            p.forget();
            n += 1;
        }
        batch.clear();
        for _ in 0..n {
            batch.extend_from_slice(&frame);
        }
        let _ = sent.send(n);
        w.write_all(&batch).await?;
    }
    // Half-close: the server answers what is in flight, then closes, ending the reader.
    w.shutdown().await
}

async fn pipelined_reader(
    mut r: OwnedReadHalf,
    slots: Arc<Semaphore>,
    mut sent: mpsc::UnboundedReceiver<usize>,
) -> std::io::Result<u64> {
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut total = 0u64;
    while read_more(&mut r, &mut input).await? > 0 {
        let mut replies = 0;
        while let Some(len) = complete_frame(&input) {
            input.advance(HEADER + len);
            replies += 1;
        }
        total += replies as u64;
        slots.add_permits(replies);
        while sent.try_recv().is_ok() {}
    }
    Ok(total)
}

/// Both RPC figures against the echo server at `addr`.
pub async fn rpc(addr: &str, s: &Settings) -> Result<RpcFigures, String> {
    let mut sock = connect(addr).await?;
    ping_pong(&mut sock, s.warmup).await?;
    let mut nanos = ping_pong(&mut sock, s.window).await?;
    nanos.sort_unstable();
    pipelined(addr, IN_FLIGHT, s.warmup).await?;
    let calls_per_sec = pipelined(addr, IN_FLIGHT, s.window).await?;
    Ok(RpcFigures {
        p50_us: quantile_us(&nanos, 0.5),
        p99_us: quantile_us(&nanos, 0.99),
        calls_per_sec,
    })
}

// ----- pub/sub --------------------------------------------------------------------------

/// A listener whose connections are read frame by frame into `sink`.
pub async fn subscribe(sink: Arc<Sink>) -> Result<(String, Guard), String> {
    let (l, addr) = listen().await?;
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let _ = sock.set_nodelay(true);
                let mut r = BufReader::with_capacity(256 * 1024, sock);
                let mut buf = vec![0u8; 1 << 20];
                while let Ok(n) = r.read_u32().await {
                    let n = n as usize;
                    if n > buf.len() || r.read_exact(&mut buf[..n]).await.is_err() {
                        break;
                    }
                    sink.on_message(&buf[..n]);
                }
            });
        }
    });
    Ok((addr, Box::new(task)))
}

pub struct Publisher(BufWriter<TcpStream>);

impl Publisher {
    pub async fn connect(addr: &str) -> Result<Publisher, String> {
        Ok(Publisher(BufWriter::with_capacity(
            64 * 1024,
            connect(addr).await?,
        )))
    }

    /// Buffers one frame (written when the buffer fills or on `flush`).
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        self.0
            .write_u32(payload.len() as u32)
            .await
            .map_err(io("write"))?;
        self.0.write_all(payload).await.map_err(io("write"))
    }

    pub async fn flush(&mut self) -> Result<(), String> {
        self.0.flush().await.map_err(io("flush"))
    }
}
