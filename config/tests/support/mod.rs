//! Helpers shared by the configuration test files.

#![allow(dead_code)]

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
