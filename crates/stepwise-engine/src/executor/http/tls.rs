//! TLS for `http` steps: rustls with the ring provider, trusting the system's root
//! certificates, the web's (Mozilla's, built in) and a step's `ca_file`.

use super::AttemptError;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// More distinct `ca_file`s than this and the cache starts over: each client holds
/// a connection pool, and a worker talks to a handful of private CAs at most.
const MAX_CA_CLIENTS: usize = 16;

/// HTTP clients: one for the public roots, one per distinct `ca_file` content.
#[derive(Clone)]
pub struct Clients {
    default: reqwest::Client,
    with_ca: Arc<Mutex<HashMap<Vec<u8>, reqwest::Client>>>,
}

impl Default for Clients {
    fn default() -> Self {
        Self::new()
    }
}

impl Clients {
    pub fn new() -> Self {
        install_ring();
        let default = builder(Vec::new()).build().unwrap_or_else(|e| {
            tracing::warn!("HTTP client without the web's root certificates: {e}");
            reqwest::Client::new()
        });
        Self {
            default,
            with_ca: Arc::default(),
        }
    }

    /// The client for the system's and the web's roots only.
    pub fn public_roots(&self) -> reqwest::Client {
        self.default.clone()
    }

    /// A client that also trusts the certificates of the PEM file `path`, read now
    /// (so a renewed CA is picked up by the next attempt).
    pub fn with_ca(&self, path: &Path) -> Result<reqwest::Client, AttemptError> {
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| {
            AttemptError::permanent(format!("http.ca_file: cannot read {shown}: {e}"))
        })?;
        let mut cache = self.with_ca.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = cache.get(&pem) {
            return Ok(client.clone());
        }
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                AttemptError::permanent(format!("http.ca_file: {shown} holds no PEM certificate"))
            })?;
        let client = builder(certs).build().map_err(|e| {
            AttemptError::permanent(format!("http.ca_file: {shown} cannot be used: {e}"))
        })?;
        if cache.len() >= MAX_CA_CLIENTS {
            cache.clear();
        }
        cache.insert(pem, client.clone());
        Ok(client)
    }
}

/// reqwest with rustls verifies against the system's roots (its platform
/// verifier); the web's roots and a private CA are added to them.
fn builder(extra: Vec<reqwest::Certificate>) -> reqwest::ClientBuilder {
    let web = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der.as_ref()).ok());
    reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_merge(web.chain(extra))
}

/// reqwest is built without a default crypto provider (aws-lc-rs needs cmake and a
/// long build); ring is the process-wide one unless the embedding program chose.
fn install_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why the server's certificate was refused, when that is why `e` happened.
pub(super) fn certificate_problem(e: &reqwest::Error) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(tls) = rustls_error(err) {
            return match tls {
                rustls::Error::InvalidCertificate(why) => Some(format!("{why:?}")),
                _ => None,
            };
        }
        // A backstop should a wrapper hide the type: rustls words it this way
        // (`rustls::Error::InvalidCertificate`'s Display).
        if let Some(why) = err.to_string().strip_prefix("invalid peer certificate: ") {
            return Some(why.to_string());
        }
        current = err.source();
    }
    None
}

/// A rustls error, directly or inside an `io::Error` (whose `source` skips the
/// error it holds and goes on to that error's source).
fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = err.downcast_ref::<std::io::Error>()?.get_ref()?;
    inner.downcast_ref::<rustls::Error>()
}
