//! A TCP proxy in front of the test server's unix socket that can play network faults: stop
//! relaying (a frozen server or a dead path), or cut the connection right after the server ran
//! a statement it was asked to prepare — for the store's append: the write committed, its answer
//! lost. It also counts round trips: every ReadyForQuery the server sends ends one (connect
//! with `sslmode=disable`, so that the server's stream is framed from its first byte); those
//! that only prepared a statement (once per connection and statement) are counted apart.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub struct Proxy {
    pub port: u16,
    frozen: Arc<AtomicBool>,
    cut: Arc<Cut>,
    ready: Arc<std::sync::atomic::AtomicU64>,
    prepares: Arc<std::sync::atomic::AtomicU64>,
}

/// Where a planned cut stands.
#[derive(Default)]
struct Cut {
    /// The text that marks the statement.
    marker: std::sync::Mutex<Option<Vec<u8>>>,
    /// 1: the statement was prepared; 2: its execution was sent — cut the next answer.
    stage: std::sync::atomic::AtomicU8,
}

impl Proxy {
    /// A proxy to the PostgreSQL server listening in the unix-socket directory `dir`.
    pub async fn start(dir: &str) -> Self {
        let socket = format!("{dir}/.s.PGSQL.5432");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Self {
            port,
            frozen: Arc::new(AtomicBool::new(false)),
            cut: Arc::new(Cut::default()),
            ready: Arc::default(),
            prepares: Arc::default(),
        };
        let (frozen, cut, ready, prepares) = (
            proxy.frozen.clone(),
            proxy.cut.clone(),
            proxy.ready.clone(),
            proxy.prepares.clone(),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::UnixStream::connect(&socket).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(relay(
                    client_read,
                    server_write,
                    frozen.clone(),
                    Side::Client(cut.clone()),
                ));
                tokio::spawn(relay(
                    server_read,
                    client_write,
                    frozen.clone(),
                    Side::Server(cut.clone(), Frames::new(ready.clone(), prepares.clone())),
                ));
            }
        });
        proxy
    }

    /// libpq settings reaching the server through the proxy: `config` with its host replaced.
    pub fn config(&self, config: &str) -> String {
        let rest: Vec<&str> = config
            .split_whitespace()
            .filter(|kv| !kv.starts_with("host="))
            .collect();
        format!("host=127.0.0.1 port={} {}", self.port, rest.join(" "))
    }

    /// Round trips that ran statements so far, on every connection: ReadyForQuery messages the
    /// server sent, except those that ended a prepare alone ([`Proxy::prepares`]).
    pub fn round_trips(&self) -> u64 {
        self.ready.load(Ordering::SeqCst)
    }

    /// Round trips that only prepared a statement (a connection's first use of it).
    pub fn prepares(&self) -> u64 {
        self.prepares.load(Ordering::SeqCst)
    }

    pub fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }

    /// The next statement whose text contains `marker` is prepared and executed, but the
    /// answer to its execution is not relayed: the connection closes. (The client must prepare
    /// it anew: use a fresh pool.)
    pub fn cut_after(&self, marker: &str) {
        *self.cut.marker.lock().unwrap() = Some(marker.as_bytes().to_vec());
        self.cut.stage.store(0, Ordering::SeqCst);
    }
}

enum Side {
    Client(Arc<Cut>),
    Server(Arc<Cut>, Frames),
}

/// Splits the server's stream into messages (a type byte, a length that counts itself, the
/// body) and counts ReadyForQuery (`Z`): as a prepare when what it ends parsed a statement
/// (`1`) and ran none (no `2` BindComplete, no `C` CommandComplete).
struct Frames {
    header: Vec<u8>,
    skip: usize,
    ready: Arc<std::sync::atomic::AtomicU64>,
    prepares: Arc<std::sync::atomic::AtomicU64>,
    parsed: bool,
    ran: bool,
}

impl Frames {
    fn new(
        ready: Arc<std::sync::atomic::AtomicU64>,
        prepares: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        Self {
            header: Vec::with_capacity(5),
            skip: 0,
            ready,
            prepares,
            parsed: false,
            ran: false,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (5 - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() == 5 {
                let length = u32::from_be_bytes(self.header[1..5].try_into().unwrap()) as usize;
                match self.header[0] {
                    b'1' => self.parsed = true,
                    b'2' | b'C' => self.ran = true,
                    b'Z' => {
                        let counter = if self.parsed && !self.ran {
                            &self.prepares
                        } else {
                            &self.ready
                        };
                        counter.fetch_add(1, Ordering::SeqCst);
                        (self.parsed, self.ran) = (false, false);
                    }
                    _ => {}
                }
                self.skip = length.saturating_sub(4);
                self.header.clear();
            }
        }
    }
}

async fn relay(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    frozen: Arc<AtomicBool>,
    side: Side,
) {
    let mut side = side;
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            return;
        }
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let chunk = &buf[..n];
        match &mut side {
            Side::Client(cut) => {
                let mut marker = cut.marker.lock().unwrap();
                match (cut.stage.load(Ordering::SeqCst), marker.as_deref()) {
                    (0, Some(m)) if chunk.windows(m.len()).any(|w| w == m) => {
                        cut.stage.store(1, Ordering::SeqCst);
                    }
                    (1, Some(_)) => {
                        cut.stage.store(2, Ordering::SeqCst);
                        *marker = None;
                    }
                    _ => {}
                }
            }
            Side::Server(cut, frames) => {
                frames.feed(chunk);
                if cut
                    .stage
                    .compare_exchange(2, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    return;
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The unix-socket directory of the test database, if it is reached that way.
pub fn socket_dir(url: &str) -> Option<String> {
    url.split_whitespace()
        .find_map(|kv| kv.strip_prefix("host="))
        .filter(|dir| dir.starts_with('/'))
        .map(str::to_owned)
}
