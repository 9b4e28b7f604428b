//! The API's listener under TLS: accepts TCP connections, runs each TLS handshake in its
//! own task (bounded by [`HANDSHAKE_BOUND`]), and hands the server only the connections
//! whose handshake succeeded, so a slow or silent client never holds up the others.
//!
//! A connection whose first byte is not a TLS handshake record but a letter is plain HTTP
//! sent to the HTTPS port: it gets a `400` in plain HTTP saying to use `https://` (as
//! nginx does), instead of a reset the client would report as a broken connection.
//! Refused handshakes (no client certificate, one from an unknown CA, a client that does
//! not trust this node's certificate) are logged at `info` with the reason in words.

use crate::store::http::{ErrorBody, ErrorKind};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a connection may take to complete its handshake.
pub const HANDSHAKE_BOUND: Duration = Duration::from_secs(10);

/// The first byte of a TLS handshake record (RFC 8446 §5.1, content type 22).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Bounds on reading and discarding a plain HTTP request before answering it.
const PLAIN_HEAD_LIMIT: usize = 16 << 10;
const PLAIN_BOUND: Duration = Duration::from_secs(2);

/// A TCP listener whose connections come out with TLS established (see the module doc).
/// Dropping it stops the accepting task and closes the port.
#[derive(Debug)]
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Serves TLS with `config` on `tcp` (needs a tokio runtime).
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, incoming) = mpsc::channel(64);
        tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), tx));
        Ok(TlsListener { incoming, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(connection) => connection,
            // The accepting task ends only once this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Accepts until the listener is dropped, one handshake task per connection.
async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            () = tx.closed() => return,
            accepted = tcp.accept() => accepted,
        };
        let (mut stream, peer) = match accepted {
            Ok(connection) => connection,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin (as axum).
                tracing::warn!(%e, "accepting an HTTPS connection failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        crate::store::server::no_delay(&mut stream);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_BOUND, handshake(stream, peer, &acceptor)).await {
                Ok(Ok(Some(tls))) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::info!(%peer, reason = %refusal(&e), "TLS handshake refused"),
                Err(_) => {
                    tracing::debug!(%peer, "no TLS handshake within {HANDSHAKE_BOUND:?}; closed")
                }
            }
        });
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The TLS connection, or `None` for a connection that was answered or closed without
/// one (plain HTTP, a TCP probe that sent nothing).
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: &TlsAcceptor,
) -> io::Result<Option<TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Ok(None);
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        if first[0].is_ascii_alphabetic() {
            tracing::debug!(%peer, "plain HTTP sent to the HTTPS port; answered 400");
            answer_plain_http(stream).await;
        }
        return Ok(None);
    }
    acceptor.accept(stream).await.map(Some)
}

/// Reads the request's head (bounded), answers 400 with the API's JSON error, and closes
/// after letting the client read it (a close with unread data would reset the
/// connection and lose the answer).
async fn answer_plain_http(mut stream: TcpStream) {
    let exchange = async {
        let mut head = Vec::new();
        let mut buf = [0u8; 2048];
        while head.len() < PLAIN_HEAD_LIMIT && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let body = serde_json::to_string(&ErrorBody {
            error: "this node serves HTTPS only: call it with https:// instead of http://".into(),
            kind: ErrorKind::BadRequest,
            mod_index: None,
            oldest: None,
            revision: None,
        })
        .unwrap_or_default();
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}\n",
            body.len() + 1
        );
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Discard what else the client sends (a body) until it closes.
        while stream.read(&mut buf).await? > 0 {}
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(PLAIN_BOUND, exchange).await;
}

/// Why a handshake failed, in words.
fn refusal(e: &io::Error) -> String {
    use rustls::{AlertDescription as Alert, CertificateError, Error};
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) else {
        return e.to_string();
    };
    match tls {
        Error::NoCertificatesPresented => {
            "the client presented no certificate (--http-client-ca requires one)".into()
        }
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the client's certificate is not signed by a CA of --http-client-ca".into()
        }
        Error::InvalidCertificate(other) => format!("the client's certificate is invalid: {other}"),
        Error::AlertReceived(Alert::UnknownCA | Alert::BadCertificate | Alert::CertificateUnknown) => {
            "the client refused this node's certificate: it does not trust the CA that signed --http-cert, or it called a host name or IP the certificate does not list".into()
        }
        other => other.to_string(),
    }
}
