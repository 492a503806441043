//! A TCP fault proxy on loopback for the fault tests (issue 14): it stands between Hangar and
//! PostgreSQL, or between Hangar and a provider or receiver, forwards bytes both ways and
//! injects a fault chosen at run time ([`Fault`]): added latency on every chunk, a bandwidth
//! limit, half-open sockets (new connections are accepted and never forwarded: the peer sees
//! a connection that never answers), and [`FaultProxy::drop_all`], which closes every
//! connection at once (what a database restart or a middlebox reset does).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What the proxy does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards as is.
    None,
    /// Holds every chunk this long before forwarding it (each direction).
    Latency(Duration),
    /// Forwards at most this many bytes a second (each direction, each connection).
    Bandwidth(u64),
    /// Accepts new connections and never forwards a byte of them (nor closes them until
    /// [`FaultProxy::drop_all`]); connections already open go on.
    HalfOpen,
}

/// A running proxy from `addr` to its target; stops when dropped.
pub struct FaultProxy {
    /// `127.0.0.1:PORT` the proxy listens on.
    pub addr: String,
    fault: Arc<Mutex<Fault>>,
    /// Cancelled by [`FaultProxy::drop_all`]; each connection holds the one current when it
    /// was accepted.
    generation: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl FaultProxy {
    /// A proxy to `target` (`host:port`) that forwards as is until told otherwise.
    pub async fn start(target: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr").to_string();
        let proxy = FaultProxy {
            addr,
            fault: Arc::new(Mutex::new(Fault::None)),
            generation: Arc::new(Mutex::new(CancellationToken::new())),
            stop: CancellationToken::new(),
        };
        let (fault, generation, stop) = (
            proxy.fault.clone(),
            proxy.generation.clone(),
            proxy.stop.clone(),
        );
        let target = target.to_owned();
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                };
                let dropped = generation.lock().unwrap().clone();
                let now = *fault.lock().unwrap();
                let fault = fault.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    if now == Fault::HalfOpen {
                        // Keep the socket open, read nothing, answer nothing.
                        dropped.cancelled().await;
                        drop(client);
                        return;
                    }
                    let Ok(upstream) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (up_read, up_write) = upstream.into_split();
                    tokio::select! {
                        () = dropped.cancelled() => {}
                        () = pump(client_read, up_write, fault.clone()) => {}
                        () = pump(up_read, client_write, fault) => {}
                    }
                    // Both halves are dropped here: the peers see the connection close.
                });
            }
        });
        proxy
    }

    /// Sets the fault from now on (chunk by chunk for open connections; half-open applies to
    /// connections accepted from now on).
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// Closes every connection open now; new ones are accepted as usual.
    pub fn drop_all(&self) {
        let mut generation = self.generation.lock().unwrap();
        generation.cancel();
        *generation = CancellationToken::new();
    }

    /// `url` with its `host:port` replaced by the proxy's (`http://127.0.0.1:5432/x` →
    /// `http://127.0.0.1:PROXY/x`).
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, _) = match authority.rsplit_once('@') {
            Some((user, host)) => (format!("{user}@"), host),
            None => (String::new(), authority),
        };
        format!("{scheme}://{userinfo}{}{path}", self.addr)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.drop_all();
    }
}

/// Forwards `from` to `to` chunk by chunk under the current fault, until either side closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: Arc<Mutex<Fault>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let limit = match *fault.lock().unwrap() {
            // A tenth of a second's worth at a time, so the rate holds for small bodies too.
            Fault::Bandwidth(rate) => ((rate / 10).max(1) as usize).min(buf.len()),
            _ => buf.len(),
        };
        let n = match from.read(&mut buf[..limit]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let current = *fault.lock().unwrap();
        match current {
            Fault::Latency(delay) => tokio::time::sleep(delay).await,
            Fault::Bandwidth(rate) => {
                tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate.max(1) as f64)).await;
            }
            Fault::None | Fault::HalfOpen => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `host:port` of a `scheme://[user@]host:port/...` URL.
pub fn authority_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}
