//! One accepted connection, served with hyper under the bounds of
//! [`ConnectionLimits`]:
//!
//! - **header read**: a connection that has not delivered a complete request
//!   head within `header_read_timeout` — from the accept for its first
//!   request, from its first byte for a later one — is closed (slowloris);
//! - **idle**: a keep-alive connection with no request in flight is closed
//!   after `idle_timeout` without a byte;
//! - **request body**: a request body not fully received within
//!   `request_body_timeout` of its request head fails to read, as an
//!   `io::ErrorKind::TimedOut` error ([`body_timed_out`]), which handlers
//!   answer with 408.
//!
//! While a request is in flight — its response still streaming, an SSE
//! stream for as long as it lasts — neither the header nor the idle timer
//! runs: a long response is never cut by them. Connections speak HTTP/1.1
//! only (see [`serve`] for why not cleartext HTTP/2).
//!
//! Why not hyper's own `header_read_timeout`: hyper restarts it as soon as a
//! response is written, so an idle keep-alive connection would be closed
//! after the header timeout and the two bounds could not differ.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::Request;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bounds on every accepted connection (`[limits]` in the configuration,
/// documented in docs/operations.md "Connections and outbound calls").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; past it the listener stops accepting
    /// (new connections wait in the kernel's backlog) until one closes.
    pub max_connections: usize,
    /// Longest time to receive a complete request head.
    pub header_read_timeout: Duration,
    /// Longest silence on a keep-alive connection with no request in flight.
    pub idle_timeout: Duration,
    /// Longest time to receive a request body, from its request head.
    pub request_body_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_body_timeout: Duration::from_secs(30),
        }
    }
}

/// Whether a body-read error is the `request_body_timeout` cut-off (an
/// `io::ErrorKind::TimedOut` anywhere in its chain): answer 408, not 400/413.
pub fn body_timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Milliseconds since the connection opened; `NONE` is "not yet".
const NONE: u64 = u64::MAX;

/// What the connection is doing, as the timers need to know it.
struct Activity {
    opened: Instant,
    /// Requests whose response has not finished (or been dropped).
    in_flight: AtomicUsize,
    /// Requests begun on this connection.
    begun: AtomicU64,
    /// When the last request finished.
    idle_since: AtomicU64,
    /// The first byte read since then: a next request has started.
    first_byte: AtomicU64,
    /// Woken when the last in-flight request finishes.
    idle: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            begun: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            first_byte: AtomicU64::new(NONE),
            idle: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    fn read_some(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0
            && self.first_byte.load(Ordering::SeqCst) == NONE
        {
            let _ = self.first_byte.compare_exchange(
                NONE,
                self.now(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.begun.fetch_add(1, Ordering::SeqCst);
        self.first_byte.store(NONE, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// When the connection is to be closed unless something happens first;
    /// `None` while a request is in flight.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        if self.begun.load(Ordering::SeqCst) == 0 {
            return Some(self.opened + limits.header_read_timeout);
        }
        match self.first_byte.load(Ordering::SeqCst) {
            NONE => Some(self.at(self.idle_since.load(Ordering::SeqCst)) + limits.idle_timeout),
            first => Some(self.at(first) + limits.header_read_timeout),
        }
    }

    /// When to look again: at the deadline — or, while idle, no later than
    /// one header timeout from now, since a byte arriving meanwhile starts
    /// the (possibly shorter) header timer.
    fn next_check(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let deadline = self.deadline(limits)?;
        let idle =
            self.begun.load(Ordering::SeqCst) > 0 && self.first_byte.load(Ordering::SeqCst) == NONE;
        Some(if idle {
            deadline.min(Instant::now() + limits.header_read_timeout)
        } else {
            deadline
        })
    }
}

/// A request in flight; dropped when its response body is done.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.now(), Ordering::SeqCst);
        if a.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            a.first_byte.store(NONE, Ordering::SeqCst);
            a.idle.notify_one();
        }
    }
}

/// The TCP stream, noting each read that brings bytes.
struct Watched {
    tcp: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read_some();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// A request body that fails with `TimedOut` once its deadline passes.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Armed on the first wait, so a body read at once costs no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(BoxError::from))),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request body was not received within the request body timeout",
                    ))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in flight until it
/// has been sent (or dropped).
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one accepted connection until it ends, times out, or finishes
/// after `stop` turns true (graceful shutdown). `slot` is its place under
/// `max_connections`, released when this returns.
pub(crate) async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
    slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        tcp,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let in_flight = requests.begin();
        let (mut parts, body) = req.into_parts();
        // What `into_make_service_with_connect_info` would insert: handlers
        // key per-address limits on it.
        parts.extensions.insert(ConnectInfo(peer));
        let body = Body::new(DeadlineBody {
            inner: body,
            deadline: Instant::now() + limits.request_body_timeout,
            timer: None,
        });
        let app = app.clone();
        async move {
            let response = app.oneshot(Request::from_parts(parts, body)).await?;
            Ok::<_, std::convert::Infallible>(response.map(|inner| Tracked {
                inner,
                _in_flight: in_flight,
            }))
        }
    });
    // HTTP/1.1 only. The timers above stop while a response is in flight;
    // over cleartext HTTP/2 a client could open a stream and grant it no
    // flow-control window, so its response never finishes and the
    // connection would hold a slot for ever. MCP clients and proxies speak
    // HTTP/1.1 to an http:// origin; a TLS proxy in front may speak h2 to
    // clients.
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    // The header timer is ours (above); hyper's would also cut idle
    // keep-alive connections at the header timeout.
    builder.http1().header_read_timeout(None::<Duration>);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let check = activity.next_check(&limits);
        let wait = async {
            match check {
                Some(at) => tokio::time::sleep_until(at).await,
                None => activity.idle.notified().await,
            }
        };
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = stop.wait_for(|stopping| *stopping), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            () = wait => {
                if activity
                    .deadline(&limits)
                    .is_some_and(|at| at <= Instant::now())
                {
                    tracing::debug!(%peer, "closing a connection: no complete request in time, or idle too long");
                    break;
                }
            }
        }
    }
    drop(slot);
}
