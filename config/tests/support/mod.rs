//! Helpers shared by the configuration test files.

#![allow(dead_code)]

use weir_config::{LoadError, parse};

/// A listener `db` on 127.0.0.1:6000 sending to pool `pg`, with `listener`
/// appended to the listener and `pool` to the pool. `pool` must give the
/// backends (start from [`ONE`]); health checks go after it as a
/// `[pools.health_check]` table.
pub fn doc(listener: &str, pool: &str) -> String {
    format!(
        "[[listeners]]\nname = \"db\"\nbind = \"127.0.0.1:6000\"\npool = \"pg\"\n{listener}\n\n\
         [[pools]]\nname = \"pg\"\n{pool}\n"
    )
}

/// One backend, for pools whose backends are beside the point.
pub const ONE: &str = "backends = [{ address = \"127.0.0.1:5432\" }]";

/// `got` matches `want` line by line; a wanted line ending in `…` matches
/// any line that starts with the text before it (for messages that carry
/// the operating system's words).
pub fn assert_lines(name: &str, text: &str, got: &[String], want: &[&str]) {
    let matches = got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| match w.strip_suffix('…') {
                Some(prefix) => g.starts_with(prefix),
                None => g == w,
            });
    assert!(
        matches,
        "case {name}:\n--- config\n{text}\n--- got\n{}\n--- want\n{}",
        got.join("\n"),
        want.join("\n")
    );
}

/// A temporary directory of rcgen certificates, removed on drop.
pub struct CertDir(pub std::path::PathBuf);

impl CertDir {
    pub fn new() -> CertDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("weir-config-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        CertDir(dir)
    }

    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    /// Writes `NAME.pem` and `NAME.key`: a self-signed certificate for
    /// `sans`, valid until `not_after` (year, month, day) or rcgen's default.
    pub fn leaf(&self, name: &str, sans: &[&str], not_after: Option<(i32, u8, u8)>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        if let Some((y, m, d)) = not_after {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(y, m, d);
        }
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(self.0.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.0.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The validation errors of `text` (one line each); panics if it is valid
/// or fails to parse.
pub fn errors(text: &str) -> Vec<String> {
    match parse(text, "test.toml") {
        Ok(v) => panic!("expected errors, got a valid config {:?}\n{text}", v.config),
        Err(e @ LoadError::Invalid(_)) => e.lines(),
        Err(e) => panic!("expected validation errors, got {e}\n{text}"),
    }
}

/// The warnings of `text`, which must be valid.
pub fn warnings(text: &str) -> Vec<String> {
    match parse(text, "test.toml") {
        Ok(v) => v.warnings.iter().map(ToString::to_string).collect(),
        Err(e) => panic!("expected a valid config, got:\n{e}\n{text}"),
    }
}
