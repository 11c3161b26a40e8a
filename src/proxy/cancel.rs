//! Why a proxied request may end before its answer is complete: the client left, or the server's
//! stop deadline came. actix-web keeps running a handler whose client has gone (it only notices
//! when a write fails), so the proxy watches the client's socket itself while it waits on an
//! upstream, as nginx does to answer 499.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::Extensions;
use actix_web::HttpRequest;
use tokio::sync::watch;

/// What ended a request early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// The client closed its connection.
    ClientGone,
    /// The graceful stop deadline (`SERVER_GRACEFUL_SHUTDOWN_TIMEOUT`) passed.
    ServerCut,
}

/// A second handle on a client connection's socket, so that a request can wait for the client's
/// end of stream without reading what actix has to read. It is registered with the reactor only
/// while a request watches it (see [`WATCH_AFTER`]).
struct ClientSocket(std::net::TcpStream);

/// How long a request runs before its client's socket is watched. Registering the socket and
/// peeking at it cost three syscalls, and a second readiness event for every request the
/// connection carries (strace: one failed `recvfrom` per request); most answers are back well
/// before this, and a client that leaves earlier is noticed when this time is up.
const WATCH_AFTER: Duration = Duration::from_millis(10);

/// `HttpServer::on_connect` hook: keeps a handle on each plain TCP connection's socket.
pub fn on_connect(conn: &dyn std::any::Any, ext: &mut Extensions) {
    use std::os::fd::AsFd;
    let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let Ok(fd) = tcp.as_fd().try_clone_to_owned() else {
        return;
    };
    let std = std::net::TcpStream::from(fd);
    if std.set_nonblocking(true).is_ok() {
        ext.insert(Rc::new(ClientSocket(std)));
    }
}

/// Resolves when the client has closed its side (end of stream or reset), watched from
/// [`WATCH_AFTER`] on. A client that sends more bytes (a pipelined request) is still there, and
/// is not watched further.
async fn client_gone(socket: Option<Rc<ClientSocket>>) {
    let Some(socket) = socket else {
        return std::future::pending().await;
    };
    tokio::time::sleep(WATCH_AFTER).await;
    let Some(watched) = socket
        .0
        .try_clone()
        .ok()
        .and_then(|dup| tokio::net::TcpStream::from_std(dup).ok())
    else {
        return std::future::pending().await;
    };
    let mut byte = [0u8; 1];
    match watched.peek(&mut byte).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

/// The server's stop deadline, shared by every worker: it passes once a graceful stop has lasted
/// `SERVER_GRACEFUL_SHUTDOWN_TIMEOUT`.
#[derive(Clone)]
pub struct StopDeadline(Arc<watch::Sender<bool>>);

impl Default for StopDeadline {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl StopDeadline {
    /// Starts the countdown of a graceful stop.
    pub fn arm(&self, after: Duration) {
        let sender = Arc::clone(&self.0);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            tracing::warn!("Graceful stop deadline reached; cutting the requests still in flight.");
            sender.send_replace(true);
        });
    }

    /// True once the deadline has passed.
    pub fn passed(&self) -> bool {
        *self.0.borrow()
    }

    fn wait(&self) -> impl Future<Output = ()> + 'static {
        let mut receiver = self.0.subscribe();
        async move {
            if receiver.wait_for(|passed| *passed).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The interruptions one request listens for, polled alongside upstream work and the relayed
/// body. Once one has happened it stays the answer.
pub struct Interrupts {
    waiting: Pin<Box<dyn Future<Output = Interrupt>>>,
    happened: Option<Interrupt>,
}

impl Interrupts {
    /// Watches this request's client connection and the server's stop deadline. Nothing is
    /// registered until the first poll.
    pub fn new(req: &HttpRequest, stop: &StopDeadline) -> Self {
        let socket = req.conn_data::<Rc<ClientSocket>>().cloned();
        let cut = stop.wait();
        let waiting = Box::pin(async move {
            tokio::select! {
                biased;
                _ = cut => Interrupt::ServerCut,
                _ = client_gone(socket) => Interrupt::ClientGone,
            }
        });
        Self {
            waiting,
            happened: None,
        }
    }

    /// Ready once the client left or the stop deadline passed.
    pub fn poll_interrupt(&mut self, cx: &mut Context<'_>) -> Poll<Interrupt> {
        if let Some(happened) = self.happened {
            return Poll::Ready(happened);
        }
        let polled = self.waiting.as_mut().poll(cx);
        if let Poll::Ready(happened) = polled {
            self.happened = Some(happened);
        }
        polled
    }

    /// Runs `work` unless an interruption comes first; `work` is dropped then (an upstream
    /// exchange dropped this way closes its connection rather than returning it to the pool).
    pub async fn guard<T>(&mut self, work: impl Future<Output = T>) -> Result<T, Interrupt> {
        tokio::pin!(work);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(happened) = self.poll_interrupt(cx) {
                return Poll::Ready(Err(happened));
            }
            work.as_mut().poll(cx).map(Ok)
        })
        .await
    }
}
