//! A small HTTPS server for the tests, with a CA of its own made by `rcgen`:
//! `/echo` answers what it received, `/big` a body larger than the output limit
//! with its length announced, `/stream?bytes=N` N bytes chunked (no length), until
//! the client hangs up. Every request is recorded.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    /// Lower-cased names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

pub struct TestServer {
    /// `https://127.0.0.1:PORT`
    pub base: String,
    /// The CA that signed the server's certificate, PEM.
    pub ca_pem: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// Body bytes the server managed to write before clients hung up.
    pub sent: Arc<AtomicU64>,
}

/// The CA's certificate (PEM) and the server's certificate chain and key.
fn pki() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Stepwise test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (ca_cert.pem(), vec![cert.der().clone()], key)
}

impl TestServer {
    /// Starts the server on a thread of its own (the tests themselves are blocking).
    pub fn start() -> TestServer {
        let (ca_pem, chain, key) = pki();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let (r, s) = (requests.clone(), sent.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, r, s) = (acceptor.clone(), r.clone(), s.clone());
                    tokio::spawn(async move {
                        // A client that refuses the certificate ends here.
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ = serve(tls, r, s).await;
                        }
                    });
                }
            });
        });
        TestServer {
            base,
            ca_pem,
            requests,
            sent,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    requests: Arc<Mutex<Vec<Recorded>>>,
    sent: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let recorded = Recorded {
        method,
        target: target.clone(),
        headers,
        body,
    };
    requests.lock().unwrap().push(recorded.clone());
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    match path {
        "/big" => {
            let size = 2 * 1024 * 1024;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            write_filler(&mut stream, size, &sent, false).await?;
        }
        "/stream" => {
            let size: u64 = query
                .strip_prefix("bytes=")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
                .await?;
            write_filler(&mut stream, size, &sent, true).await?;
            stream.write_all(b"0\r\n\r\n").await?;
        }
        _ => {
            let received: Value = serde_json::from_slice(&recorded.body).unwrap_or(Value::Null);
            let answer = json!({
                "method": recorded.method,
                "target": recorded.target,
                "authorization": recorded.headers.get("authorization"),
                "received": received,
            })
            .to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                answer.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(answer.as_bytes()).await?;
        }
    }
    stream.shutdown().await
}

/// `size` bytes of `x`, in 64 KiB pieces (chunked-encoded when `chunked`).
async fn write_filler<S: AsyncWrite + Unpin>(
    stream: &mut S,
    size: u64,
    sent: &AtomicU64,
    chunked: bool,
) -> std::io::Result<()> {
    let piece = vec![b'x'; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        if chunked {
            stream.write_all(format!("{n:x}\r\n").as_bytes()).await?;
        }
        stream.write_all(&piece[..n]).await?;
        if chunked {
            stream.write_all(b"\r\n").await?;
        }
        sent.fetch_add(n as u64, Ordering::Relaxed);
        left -= n as u64;
    }
    Ok(())
}
