//! Responses Pingora writes on an HTTP/1 connection before weir sees a request: a request head
//! its parser rejects (400). They reach no hook of weir's, so the
//! connection's stream is watched instead: bytes written while no request is in flight are
//! such a response, and its status line is noted for the access log and `weir_requests_total`,
//! which record what the client received (Envoy logs a codec error as a request with
//! `http1.codec_error` as its response code details).

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream, TimingDigest,
    UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Connection;
use crate::metrics::Metrics;
use crate::state::State;

/// An HTTP/1 connection's stream, watched for responses written outside a request.
pub struct Watched {
    inner: Stream,
    connection: Arc<Connection>,
    state: Arc<State>,
    /// When the bytes of the head now being read began to arrive (outside a request).
    head_since: Option<Instant>,
}

impl Watched {
    pub fn boxed(inner: Stream, connection: Arc<Connection>, state: Arc<State>) -> Stream {
        Box::new(Self { inner, connection, state, head_since: None })
    }

    fn outside_request(&self) -> bool {
        !self.connection.in_request.load(Ordering::Acquire)
    }

    /// Notes a response `written` outside a request.
    fn note_written(&mut self, written: &[u8]) {
        if !self.outside_request() {
            self.head_since = None;
            return;
        }
        let Some(status) = status_line_code(written) else { return };
        let took = self.head_since.take().map_or(Duration::ZERO, |t| t.elapsed());
        let client = self.inner.get_socket_digest().and_then(|d| d.peer_addr()?.as_inet().copied());
        log_own_reply(&self.state.metrics, status, took, client);
    }
}

/// The status code of an HTTP/1 status line at the start of `bytes`.
fn status_line_code(bytes: &[u8]) -> Option<u16> {
    let rest = bytes.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// Why Pingora answered `status` itself, in Envoy's words where Envoy has them.
fn details(status: u16) -> &'static str {
    match status {
        400 => "http1.codec_error",
        _ => "downstream_local_reply",
    }
}

/// The access-log line and request count of a response Pingora wrote itself.
fn log_own_reply(metrics: &Metrics, status: u16, took: Duration, client: Option<std::net::SocketAddr>) {
    let finished = crate::metrics::Finished { code: status, duration: took, request_bytes: 0, response_bytes: 0 };
    metrics.request(metrics.unrouted(), &finished);
    crate::access_log::record(&crate::access_log::Entry {
        client,
        request_id: "",
        method: "-",
        authority: "",
        path: "-",
        protocol: "",
        status,
        details: details(status),
        bytes_received: 0,
        bytes_sent: 0,
        duration_us: took.as_micros() as u64,
        route: "-",
        upstream_cluster: "",
        upstream_address: None,
        upstream_time_us: None,
        tls_version: "",
        filters: "",
        error: None,
    });
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.head_since.is_none() && self.outside_request() {
            self.head_since = Some(Instant::now());
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.note_written(&buf[..n]);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let (Poll::Ready(Ok(n)), Some(first)) = (&polled, bufs.iter().find(|b| !b.is_empty())) {
            let n = (*n).min(first.len());
            self.note_written(&first[..n]);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Watched {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Watched {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Watched {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Watched {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Watched {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Watched {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Watched {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::status_line_code;

    #[test]
    fn reads_the_code_of_a_status_line() {
        assert_eq!(status_line_code(b"HTTP/1.1 400 Bad Request\r\n"), Some(400));
        assert_eq!(status_line_code(b"HTTP/1.0 405 "), Some(405));
        assert_eq!(status_line_code(b"HTTP/1.1 4"), None);
        assert_eq!(status_line_code(b"hello"), None);
    }
}
