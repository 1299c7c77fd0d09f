//! TLS for https listeners: one rustls server configuration per listener,
//! the certificate chosen by SNI, swapped atomically on reload.
//!
//! The configuration lives behind an [`ArcSwap`]: each accepted connection
//! takes the current one for its handshake ([`ServerTls::acceptor`]), so a
//! [`ServerTls::reload`] changes what *new* handshakes get while open
//! connections (and handshakes under way) keep the configuration they
//! started with. A reload that fails anywhere keeps the previous
//! configuration whole. Certificates are loaded by weir-config's
//! [`load_certificate`], the same code `weir check` runs.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedProtocolVersion};
use tokio_rustls::TlsAcceptor;
use weir_common::metrics as names;
use weir_config::tls::{CertificateError, TlsOptions, TlsVersion, format_utc, load_certificate};

/// Why a listener's TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file failed to load.
    #[error("certificates[{index}].{}: {source}", source.field.name())]
    Certificate {
        /// Index in the listener's certificates.
        index: usize,
        /// What is wrong.
        source: CertificateError,
    },
    /// A certificate other than the first has no name to be chosen by.
    #[error(
        "certificates[{index}].server_names: the certificate has no DNS names in its subjectAltName, so no client would get it"
    )]
    NoNames {
        /// Index in the listener's certificates.
        index: usize,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The process-wide rustls crypto provider: aws-lc-rs, installed as the
/// default on first use (or whichever provider was installed before).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| {
        // Fails only when a provider is installed already: then use that one.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        CryptoProvider::get_default()
            .map(Arc::clone)
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
    }))
}

/// Names to values: exact names, `*.` wildcards (one label), and a default.
#[derive(Debug)]
struct SniTable<T> {
    exact: HashMap<String, T>,
    /// Keyed by the parent of the wildcard: `example.com` for `*.example.com`.
    wildcard: HashMap<String, T>,
    default: Option<T>,
}

impl<T: Clone> SniTable<T> {
    fn new() -> Self {
        Self {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: None,
        }
    }

    /// Adds `value` for `names` (lowercase); a name already taken stays with
    /// the value added first, and the first value is the default.
    fn insert(&mut self, names: &[String], value: &T) {
        if self.default.is_none() {
            self.default = Some(value.clone());
        }
        for name in names {
            match name.strip_prefix("*.") {
                Some(parent) => self.wildcard.entry(parent.to_owned()),
                None => self.exact.entry(name.clone()),
            }
            .or_insert_with(|| value.clone());
        }
    }

    /// The value for the client's server name: exact, then wildcard, then
    /// the default.
    fn get(&self, server_name: Option<&str>) -> Option<&T> {
        let found = server_name.and_then(|name| {
            let lower;
            let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                lower = name.to_ascii_lowercase();
                lower.as_str()
            } else {
                name
            };
            self.exact.get(name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent)
            })
        });
        found.or(self.default.as_ref())
    }
}

/// Chooses a listener's certificate by SNI.
#[derive(Debug)]
struct SniResolver(SniTable<Arc<CertifiedKey>>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.get(client_hello.server_name()).cloned()
    }
}

/// A listener's TLS: the current server configuration and how to rebuild it.
pub struct ServerTls {
    listener: Arc<str>,
    options: TlsOptions,
    config: ArcSwap<ServerConfig>,
    /// Kept across reloads, so sessions resume after a certificate change.
    sessions: Arc<dyn StoresServerSessions>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("listener", &self.listener)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the certificates of `listener` and builds its configuration.
    pub fn new(listener: &str, options: TlsOptions) -> Result<Self, TlsError> {
        let sessions: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(4096);
        let config = build(listener, &options, &sessions)?;
        Ok(Self {
            listener: listener.into(),
            options,
            config: ArcSwap::from_pointee(config),
            sessions,
        })
    }

    /// The listener's name.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// An acceptor with the current configuration, for one handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }

    /// Reads the certificate files again and, if every one loads, swaps the
    /// configuration for new handshakes; on any failure keeps the previous
    /// one. Logs and counts (`weir_tls_reloads_total`) either way.
    pub fn reload(&self) -> Result<(), TlsError> {
        let listener = self.listener.to_string();
        match build(&self.listener, &self.options, &self.sessions) {
            Ok(config) => {
                self.config.store(Arc::new(config));
                metrics::counter!(names::TLS_RELOADS, "listener" => listener.clone(), "result" => "ok")
                    .increment(1);
                tracing::info!(listener = %listener, certificates = self.options.certificates.len(), "tls certificates reloaded");
                Ok(())
            }
            Err(e) => {
                metrics::counter!(names::TLS_RELOADS, "listener" => listener.clone(), "result" => "error")
                    .increment(1);
                tracing::error!(listener = %listener, error = %e, "tls reload failed; keeping the previous certificates");
                Err(e)
            }
        }
    }
}

/// A server configuration from the listener's files.
fn build(
    listener: &str,
    options: &TlsOptions,
    sessions: &Arc<dyn StoresServerSessions>,
) -> Result<ServerConfig, TlsError> {
    let mut table = SniTable::new();
    for (index, files) in options.certificates.iter().enumerate() {
        let loaded =
            load_certificate(files).map_err(|source| TlsError::Certificate { index, source })?;
        if let Some(t) = loaded.not_after.filter(|_| loaded.is_expired()) {
            tracing::warn!(listener, cert = %files.cert.display(), expired = %format_utc(t), "serving an expired certificate; clients will refuse it");
        }
        let names = loaded.names(files);
        if names.is_empty() && index > 0 {
            return Err(TlsError::NoNames { index });
        }
        table.insert(names, &loaded.certified);
    }
    let versions: &[&'static SupportedProtocolVersion] = match options.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver(table)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = Arc::clone(sessions);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_default() {
        let mut t = SniTable::new();
        t.insert(&names(&["a.test"]), &"a");
        t.insert(&names(&["b.test", "*.b.test"]), &"b");
        t.insert(&names(&["*.test", "a.test", "c.test"]), &"c");
        assert_eq!(t.get(Some("a.test")), Some(&"a"), "first claim wins");
        assert_eq!(t.get(Some("A.Test")), Some(&"a"), "case-insensitive");
        assert_eq!(t.get(Some("b.test")), Some(&"b"));
        assert_eq!(t.get(Some("x.b.test")), Some(&"b"));
        assert_eq!(t.get(Some("c.test")), Some(&"c"));
        assert_eq!(t.get(Some("zz.test")), Some(&"c"), "wildcard *.test");
        assert_eq!(
            t.get(Some("y.x.b.test")),
            Some(&"a"),
            "a wildcard covers one label only: default"
        );
        assert_eq!(t.get(Some("test")), Some(&"a"), "*.test is not test");
        assert_eq!(t.get(Some("other.example")), Some(&"a"));
        assert_eq!(t.get(None), Some(&"a"), "no SNI: the default");
    }

    #[test]
    fn an_empty_table_has_no_default() {
        let t: SniTable<&str> = SniTable::new();
        assert_eq!(t.get(Some("a.test")), None);
    }

    #[test]
    fn the_provider_is_installed_once() {
        let a = crypto_provider();
        let b = crypto_provider();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(CryptoProvider::get_default().is_some());
    }
}
