//! TLS from the gateway to a pool's backends (`[pools.tls]`): which
//! authorities are trusted, which name each backend must prove, and an
//! optional client certificate (mutual TLS).
//!
//! Validation and the gateway build the rustls client configuration with the
//! same [`client_config`], so `weir check` refuses exactly the files the
//! gateway would. Verification is always on: a backend with a private or
//! self-signed certificate is trusted by naming its CA (or the certificate
//! itself) in `ca_file`, never by turning checks off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::tls::{CertificateError, CertificateFiles, load_certificate, read_bounded};

/// Debian's (and most distributions') bundle of trusted authorities, used
/// when a pool names no `ca_file`.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A pool's TLS settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The trusted authorities (PEM); `None` = [`SYSTEM_CA_BUNDLE`].
    pub ca_file: Option<PathBuf>,
    /// Per backend, in the pool's order: the name sent in SNI and checked
    /// against its certificate (a DNS name, or an IP address checked against
    /// the certificate's IP addresses).
    pub server_names: Vec<String>,
    /// A client certificate for backends that require one.
    pub client_cert: Option<CertificateFiles>,
}

/// The protocols offered in ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1` only.
    Http1,
    /// `h2` only.
    H2,
}

/// Why a client configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamTlsError {
    /// The CA file is unreadable or holds no certificate.
    #[error("{0}")]
    CaFile(String),
    /// The client certificate or its key is unusable.
    #[error("{0}")]
    ClientCert(CertificateError),
}

/// Reads the trusted authorities from `path`: every PEM certificate in it.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let pem = read_bounded(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "no usable certificate in {} (expected PEM \"BEGIN CERTIFICATE\" blocks)",
            path.display()
        ));
    }
    Ok(roots)
}

/// The rustls client configuration for a pool: TLS 1.2 and 1.3, the
/// pool's authorities, its client certificate if any, and `alpn`.
pub fn client_config(tls: &UpstreamTls, alpn: Alpn) -> Result<ClientConfig, UpstreamTlsError> {
    let ca = tls
        .ca_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
    let roots = load_roots(&ca).map_err(UpstreamTlsError::CaFile)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| UpstreamTlsError::CaFile(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots);
    let mut config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some(files) => {
            let loaded = load_certificate(files).map_err(UpstreamTlsError::ClientCert)?;
            builder.with_client_cert_resolver(Arc::new(FixedClientCert(loaded.certified)))
        }
    };
    config.alpn_protocols = match alpn {
        Alpn::Http1 => vec![b"http/1.1".to_vec()],
        Alpn::H2 => vec![b"h2".to_vec()],
    };
    Ok(config)
}

/// Offers the one configured client certificate to every backend that asks.
#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0
            .key
            .choose_scheme(sigschemes)
            .is_some()
            .then(|| Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The server name a backend address implies: its host part (a DNS name or
/// an IP literal, brackets removed).
pub fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_addresses() {
        assert_eq!(host_of("api.internal:443"), "api.internal");
        assert_eq!(host_of("10.0.0.1:8443"), "10.0.0.1");
        assert_eq!(host_of("[::1]:8443"), "::1");
    }
}
