//! Real peers (redis-server, PostgreSQL, promtool) started by tests on loopback.

use std::path::PathBuf;

/// Finds a peer's executable on PATH or in `extra_dirs`; panics with the
/// Debian package to install when it is missing (a missing peer is a failed
/// test, never a silent skip).
pub fn require(bin: &str, package: &str, extra_dirs: &[&str]) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .map(PathBuf::from)
        .chain(extra_dirs.iter().map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(bin);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{bin}` not found: install the Debian package `{package}` (.ci/run does)");
}
