//! `[pools.tls]` validation: the files are loaded as the gateway will load
//! them, and every backend gets a name its certificate must prove.

use super::Report;
use crate::raw::{RawBackend, RawUpstreamTls};
use crate::tls::{CertField, CertificateFiles, is_server_name};
use crate::upstream_tls::{Alpn, UpstreamTls, UpstreamTlsError, client_config, host_of};

/// The pool's TLS settings, or `None` after reporting what is wrong.
pub(super) fn upstream_tls(
    r: &mut Report,
    path: &str,
    t: &RawUpstreamTls,
    backends: &[RawBackend],
) -> Option<UpstreamTls> {
    let errors_before = r.errors.len();
    let valid_name = |name: &str| name.parse::<std::net::IpAddr>().is_ok() || is_server_name(name);
    if let Some(name) = &t.server_name
        && (name.starts_with("*.") || !valid_name(name))
    {
        r.error(
            format!("{path}.server_name"),
            format!("invalid server name {name:?}; expected a DNS name like \"api.internal\" or an IP address"),
        );
    }
    let server_names: Vec<String> = backends
        .iter()
        .map(|b| match &t.server_name {
            Some(name) => name.to_ascii_lowercase(),
            None => host_of(&b.address).to_ascii_lowercase(),
        })
        .collect();
    if t.server_name.is_none() {
        for (j, name) in server_names.iter().enumerate() {
            if !valid_name(name) {
                r.error(
                    format!("{path}.server_name"),
                    format!("backends[{j}]'s host {name:?} is not a name a certificate can prove; set server_name"),
                );
            }
        }
    }
    let client_cert = match (&t.cert, &t.key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(CertificateFiles {
            cert: r.file(cert),
            key: r.file(key),
            server_names: None,
        }),
        (Some(_), None) => {
            r.error(format!("{path}.key"), "a client certificate needs its key");
            None
        }
        (None, Some(_)) => {
            r.error(format!("{path}.cert"), "a client key needs its certificate");
            None
        }
    };
    let tls = UpstreamTls {
        ca_file: t.ca_file.as_deref().map(|f| r.file(f)),
        server_names,
        client_cert,
    };
    if let Err(e) = client_config(&tls, Alpn::Http1) {
        match e {
            UpstreamTlsError::CaFile(msg) => r.error(format!("{path}.ca_file"), msg),
            UpstreamTlsError::ClientCert(e) => {
                let field = match e.field {
                    CertField::Cert => "cert",
                    CertField::Key => "key",
                };
                r.error(format!("{path}.{field}"), e.message);
            }
        }
    }
    (r.errors.len() == errors_before).then_some(tls)
}
