//! A test PKI: a CA made with rcgen and the leaves it signs, as PEM files
//! in a temporary directory (TLS listener and TLS backend tests).

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::peers::TempDir;

/// A test CA and the leaf certificates it signs, as PEM files in a
/// temporary directory.
pub struct Pki {
    /// The directory of the PEM files.
    pub dir: TempDir,
    /// The CA.
    pub ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A new CA, its certificate written to `ca.pem`.
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "weir test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = TempDir::new("tls");
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca }
    }

    /// The CA certificate's file.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Writes `{file}.pem` and `{file}.key` (each replaced atomically): a
    /// leaf for `sans` signed by the CA. Returns their paths.
    pub fn leaf(&self, file: &str, sans: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, sans[0]);
        let cert = params.signed_by(&key, &*self.ca).unwrap();
        let (c, k) = (
            self.dir.join(&format!("{file}.pem")),
            self.dir.join(&format!("{file}.key")),
        );
        for (path, text) in [(&c, cert.pem()), (&k, key.serialize_pem())] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        (c.display().to_string(), k.display().to_string())
    }
}

/// A TLS server config for the leaf `file` of `pki`, offering `alpn`, and
/// requiring a client certificate signed by `client_ca` when given.
pub fn server_config(
    pki: &Pki,
    file: &str,
    sans: &[&str],
    alpn: &[&str],
    client_ca: Option<&Pki>,
) -> Arc<rustls::ServerConfig> {
    let (cert, key) = pki.leaf(file, sans);
    let chain = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca.ca_pem()).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}
