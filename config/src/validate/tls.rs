//! HTTPS listener validation: the certificates (read and checked, as the
//! gateway will load them) and the TLS version.

use std::collections::HashMap;

use super::Report;
use crate::raw::RawListener;
use crate::tls::{
    CertificateFiles, TlsOptions, TlsVersion, format_utc, is_server_name, load_certificate,
};

/// The TLS options of a listener whose protocol is `https`.
pub(super) fn tls_options(r: &mut Report, path: &str, l: &RawListener) -> TlsOptions {
    let min_version = r.one_of(
        &format!("{path}.tls_min_version"),
        l.tls_min_version.as_deref(),
        TlsVersion::Tls12,
        &[("1.2", TlsVersion::Tls12), ("1.3", TlsVersion::Tls13)],
    );
    let raw = l.certificates.as_deref().unwrap_or_default();
    if raw.is_empty() {
        r.error(
            format!("{path}.certificates"),
            "an https listener needs at least one certificate ([[listeners.certificates]] with cert and key)",
        );
    }
    // Which certificate first claimed each name: the first one wins.
    let mut claimed: HashMap<String, usize> = HashMap::new();
    let mut certificates = Vec::with_capacity(raw.len());
    for (i, c) in raw.iter().enumerate() {
        let cpath = format!("{path}.certificates[{i}]");
        let server_names = c.server_names.as_ref().map(|names| {
            if names.is_empty() {
                r.error(
                    format!("{cpath}.server_names"),
                    "must not be empty; leave it out to use the certificate's own names",
                );
            }
            names
                .iter()
                .map(|name| {
                    let lower = name.to_ascii_lowercase();
                    if !is_server_name(&lower) {
                        r.error(
                            format!("{cpath}.server_names"),
                            format!(
                                "invalid server name {name:?}; expected a name like \"api.example.com\" or \"*.example.com\""
                            ),
                        );
                    }
                    lower
                })
                .collect::<Vec<_>>()
        });
        let files = CertificateFiles {
            cert: r.file(&c.cert),
            key: r.file(&c.key),
            server_names,
        };
        let mut empty = false;
        for (field, value) in [("cert", &c.cert), ("key", &c.key)] {
            if value.trim().is_empty() {
                r.error(format!("{cpath}.{field}"), "must not be empty");
                empty = true;
            }
        }
        if !empty {
            check_files(r, &cpath, i, &files, &mut claimed);
        }
        certificates.push(files);
    }
    TlsOptions {
        certificates,
        min_version,
    }
}

/// Loads one certificate as the gateway will, and reports what is wrong
/// (errors) or dubious (warnings) about it.
fn check_files(
    r: &mut Report,
    cpath: &str,
    index: usize,
    files: &CertificateFiles,
    claimed: &mut HashMap<String, usize>,
) {
    let loaded = match load_certificate(files) {
        Ok(loaded) => loaded,
        Err(e) => {
            r.error(format!("{cpath}.{}", e.field.name()), e.message);
            return;
        }
    };
    let cert = files.cert.display();
    if let Some(t) = loaded.not_after.filter(|_| loaded.is_expired()) {
        r.warn(
            format!("{cpath}.cert"),
            format!(
                "the certificate in {cert} expired on {}; clients will refuse it",
                format_utc(t)
            ),
        );
    }
    let names_field = if files.server_names.is_some() {
        format!("{cpath}.server_names")
    } else {
        format!("{cpath}.cert")
    };
    let names = loaded.names(files);
    // (An empty `server_names` is reported by the caller.)
    if names.is_empty() && index > 0 && files.server_names.is_none() {
        r.error(
            format!("{cpath}.server_names"),
            format!(
                "the certificate in {cert} has no DNS names in its subjectAltName, so no client would get it; set server_names"
            ),
        );
    }
    for name in names {
        if files.server_names.is_some() && !covers(&loaded.dns_names, name) {
            r.warn(
                &names_field,
                format!(
                    "the certificate in {cert} is not valid for {name:?} (its subjectAltName has {}); clients that check will refuse it",
                    if loaded.dns_names.is_empty() {
                        "no DNS names".to_owned()
                    } else {
                        loaded.dns_names.join(", ")
                    }
                ),
            );
        }
        match claimed.get(name) {
            Some(&first) if first != index => r.warn(
                &names_field,
                format!("{name:?} is also served by certificates[{first}], which wins"),
            ),
            Some(_) => {}
            None => {
                claimed.insert(name.clone(), index);
            }
        }
    }
}

/// True when a certificate with subjectAltName `dns_names` is valid for
/// `name` (exactly, or through a `*.` wildcard for one label).
fn covers(dns_names: &[String], name: &str) -> bool {
    dns_names.iter().any(|d| d == name)
        || (!name.starts_with("*.")
            && name.split_once('.').is_some_and(|(_, parent)| {
                dns_names
                    .iter()
                    .any(|d| d.strip_prefix("*.") == Some(parent))
            }))
}
