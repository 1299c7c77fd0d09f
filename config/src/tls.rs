//! TLS settings of https listeners, and loading their certificate files.
//!
//! Validation ([`crate::validate`]) and the gateway (at start-up and on every
//! reload) load certificates with the same [`load_certificate`], so `weir
//! check` refuses exactly what the running gateway would refuse.
//!
//! PEM is parsed with rustls-pki-types' `PemObject` (not the archived
//! rustls-pemfile); the private key is loaded with rustls' aws-lc-rs signer so
//! it can be checked against the certificate's public key; the names come
//! from webpki's reading of the subjectAltName. Only the expiry date is read
//! by hand ([`not_after`]): neither rustls nor webpki exposes it, and a small
//! bounds-checked DER walk is lighter than a full X.509 parser.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::sign::{CertifiedKey, SigningKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Settings only https listeners have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Certificates, in file order (at least one); the first is the default
    /// for clients without SNI or with a name no certificate has.
    pub certificates: Vec<CertificateFiles>,
    /// Oldest protocol version accepted.
    pub min_version: TlsVersion,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl TlsVersion {
    /// The configuration name (`"1.2"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        }
    }
}

/// One certificate of an https listener: where its files are and which
/// names it is served for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The PEM certificate chain (resolved against the configuration file's
    /// directory).
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
    /// The configured `server_names` (lowercase); `None` = the DNS names of
    /// the certificate's subjectAltName, read again on every reload.
    pub server_names: Option<Vec<String>>,
}

/// Which file of a certificate an error is about: the field of
/// `[[listeners.certificates]]` to report it at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertField {
    /// The `cert` file.
    Cert,
    /// The `key` file.
    Key,
}

impl CertField {
    /// The configuration key.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cert => "cert",
            Self::Key => "key",
        }
    }
}

/// Why a certificate could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CertificateError {
    /// The file at fault.
    pub field: CertField,
    /// What is wrong, naming the file.
    pub message: String,
}

impl CertificateError {
    fn cert(message: String) -> Self {
        Self {
            field: CertField::Cert,
            message,
        }
    }

    fn key(message: String) -> Self {
        Self {
            field: CertField::Key,
            message,
        }
    }
}

/// A certificate chain and its key, loaded and checked.
#[derive(Debug, Clone)]
pub struct LoadedCertificate {
    /// The chain and the signing key, ready for rustls.
    pub certified: Arc<CertifiedKey>,
    /// The DNS names of the leaf's subjectAltName, lowercase (`*.` wildcards
    /// included).
    pub dns_names: Vec<String>,
    /// The leaf's notAfter, when it could be read.
    pub not_after: Option<SystemTime>,
}

impl LoadedCertificate {
    /// The names this certificate is served for: the configured ones, else
    /// its subjectAltName DNS names.
    pub fn names<'a>(&'a self, files: &'a CertificateFiles) -> &'a [String] {
        files.server_names.as_deref().unwrap_or(&self.dns_names)
    }

    /// True when the leaf's notAfter has passed.
    pub fn is_expired(&self) -> bool {
        self.not_after.is_some_and(|t| t < SystemTime::now())
    }
}

/// PEM files larger than this are refused: a chain is a few KiB, and a
/// mistyped path (a log, `/dev/zero`) must not be read whole.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// Reads at most [`MAX_PEM_BYTES`] of `path`.
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "{} is larger than {MAX_PEM_BYTES} bytes; not a PEM file",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Reads and checks a certificate chain and its private key: both parse,
/// the leaf is X.509, and the key is the leaf's.
pub fn load_certificate(files: &CertificateFiles) -> Result<LoadedCertificate, CertificateError> {
    let cert_path = files.cert.display();
    let key_path = files.key.display();
    let pem = read_bounded(&files.cert).map_err(CertificateError::cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertificateError::cert(format!("{cert_path} is not valid PEM: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(CertificateError::cert(format!(
            "no certificate in {cert_path} (expected PEM \"BEGIN CERTIFICATE\" blocks)"
        )));
    };
    let parsed = webpki::EndEntityCert::try_from(leaf).map_err(|e| {
        CertificateError::cert(format!(
            "the first certificate in {cert_path} is not valid X.509: {e}"
        ))
    })?;
    let dns_names: Vec<String> = parsed
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect();
    let not_after = not_after(leaf).map(|secs| UNIX_EPOCH + std::time::Duration::from_secs(secs));

    let pem = read_bounded(&files.key).map_err(CertificateError::key)?;
    let key = match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(key) => key,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            return Err(CertificateError::key(format!(
                "no private key in {key_path} (expected an unencrypted PKCS#8, PKCS#1 or SEC1 PEM block)"
            )));
        }
        Err(e) => {
            return Err(CertificateError::key(format!(
                "{key_path} is not valid PEM: {e}"
            )));
        }
    };
    let signer: Arc<dyn SigningKey> = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| {
            CertificateError::key(format!("unsupported private key in {key_path}: {e}"))
        })?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        // `Unknown`: the key cannot tell its public half; nothing to compare.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(CertificateError::key(format!(
                "the private key in {key_path} does not match the certificate in {cert_path}"
            )));
        }
    }
    Ok(LoadedCertificate {
        certified: Arc::new(certified),
        dns_names,
        not_after,
    })
}

/// True for a name a certificate can be served for: DNS labels of letters,
/// digits and `-` (the first may be `*`, a wildcard for one label).
pub fn is_server_name(name: &str) -> bool {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    !rest.is_empty()
        && rest.len() <= 253
        && rest.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `time` as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ------------------------------------------------------------- DER

/// One DER tag-length-value: (tag, value, the rest after it).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = rest.get(..n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest.get(n..)?)
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// The notAfter of an X.509 certificate, in seconds since the Unix epoch
/// (`None` when the DER does not have the expected shape or the time is
/// before 1970).
pub fn not_after(der: &[u8]) -> Option<u64> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, cert, _) = tlv(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = tlv(cert)? else {
        return None;
    };
    // [0] version (optional), serialNumber, signature, issuer, validity.
    let (tag, _, mut rest) = tlv(tbs)?;
    if tag == 0xa0 {
        rest = tlv(rest)?.2;
    }
    let rest = tlv(rest)?.2; // signature algorithm
    let rest = tlv(rest)?.2; // issuer
    let (SEQUENCE, validity, _) = tlv(rest)? else {
        return None;
    };
    let after_not_before = tlv(validity)?.2;
    let (tag, time, _) = tlv(after_not_before)?;
    parse_time(tag, time)
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`, tag 0x18) as Unix seconds.
fn parse_time(tag: u8, text: &[u8]) -> Option<u64> {
    let digits = text.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        digits
            .get(range)?
            .iter()
            .try_fold(0i64, |acc, &b| Some(acc * 10 + i64::from(b - b'0')))
    };
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (0x18, 14) => (num(0..4)?, 4),
        _ => return None,
    };
    let field = |i: usize| num(rest + 2 * i..rest + 2 * i + 2);
    let (month, day, hour, minute, second) =
        (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in [-1, 0, 59, 365, 11_016, 20_000, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn times_parse() {
        assert_eq!(parse_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(parse_time(0x18, b"20000301000000Z"), Some(11_017 * 86_400));
        assert_eq!(parse_time(0x17, b"700101000000"), None);
        assert_eq!(parse_time(0x17, b"7001010000Z"), None);
        assert_eq!(parse_time(0x18, b"20001301000000Z"), None);
        assert_eq!(parse_time(0x18, b"19691231235959Z"), None);
        assert_eq!(
            format_utc(UNIX_EPOCH + std::time::Duration::from_secs(2_524_607_999)),
            "2049-12-31 23:59:59 UTC"
        );
    }

    #[test]
    fn der_walk_never_panics_on_garbage() {
        assert_eq!(not_after(&[]), None);
        assert_eq!(not_after(&[0x30]), None);
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(not_after(&[0x30, 0x02, 0x30, 0x00]), None);
        for len in 0..64u8 {
            let junk: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37) ^ 0x30).collect();
            let _ = not_after(&junk);
        }
    }

    #[test]
    fn server_names() {
        for ok in ["a.test", "*.example.com", "x", "a-b.c_d.io"] {
            assert!(is_server_name(ok), "{ok}");
        }
        for bad in [
            "", "*.", "*", "a..b", "a b", "a.*.b", "**.a", "a:443", "é.test",
        ] {
            assert!(!is_server_name(bad), "{bad}");
        }
    }
}
