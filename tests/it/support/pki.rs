//! A test PKI: a CA made with rcgen and the leaves it signs, as PEM files
//! in a temporary directory (TLS listener and TLS backend tests).

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

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
