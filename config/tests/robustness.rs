//! `weir_config::parse` reads files written by people, half-edited files and
//! files that are not TOML at all: whatever it is fed, it must return an
//! answer, never panic, and a config it accepts must keep the promises the
//! runtime relies on.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use proptest::prelude::*;
use weir_config::{LoadError, parse};

const SEEDS: &[&str] = &[
    include_str!("../../examples/reference.toml"),
    include_str!("../../examples/postgres.toml"),
    include_str!("../../examples/redis.toml"),
    include_str!("../../examples/maglev.toml"),
    "[[listeners]]\nname = \"a\"\nbind = \"127.0.0.1:0\"\npool = \"p\"\n\
     [[pools]]\nname = \"p\"\nbackends = [{ address = \"127.0.0.1:1\" }]\n",
];

/// Values people (and accidents) put where a value goes.
const VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "257",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "1e400",
    "1.0",
    "0.5",
    "nan",
    "inf",
    "-inf",
    "true",
    "[]",
    "{}",
    "[[]]",
    "[1, \"a\"]",
    "1979-05-27T07:32:00Z",
    "\"\"",
    "\" \"",
    "\"0s\"",
    "\"5\"",
    "\"off\"",
    "\"1ms\"",
    "\"99999999999999999999d\"",
    "\"18446744073709551615ms\"",
    "\"213503982334601d\"",
    "\"1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h\"",
    "\"0.0.0.0:0\"",
    "\"127.0.0.1:9090\"",
    "\"127.0.0.1:65536\"",
    "\"[::1]:0\"",
    "\"::1:5432\"",
    "\":5432\"",
    "\"localhost:\"",
    "\"é:1\"",
    "\"\\u0000\"",
    "\"maglev\"",
    "\"ring_hash\"",
    "\"send_expect\"",
    "\"zz\"",
    "\"0\"",
    "\"ééé\"",
    "'''\nmulti\nline'''",
];

/// Keys and headers of the file, so random text is often valid TOML.
const TOKENS: &[&str] = &[
    "[admin]",
    "[runtime]",
    "[[listeners]]",
    "[[pools]]",
    "[[pools.backends]]",
    "[pools.health_check]",
    "name",
    "bind",
    "pool",
    "address",
    "enabled",
    "weight",
    "algorithm",
    "hash_key",
    "maglev_table_size",
    "balance_factor",
    "backends",
    "health_check",
    "type",
    "send",
    "send_hex",
    "expect",
    "expect_hex",
    "interval",
    "timeout",
    "rise",
    "fall",
    "keepalive",
    "connect_attempts",
    "idle_timeout",
    "worker_threads",
    "shutdown_grace",
    " = ",
    "\n",
    "\n",
    ".",
    ",",
    "[",
    "]",
    "{",
    "}",
    "#",
    "\"",
    "é",
    "\r\n",
    "\u{feff}",
];

/// Checks one answer: syntax errors point inside the text, a valid config
/// keeps its invariants.
fn check(text: &str) -> Result<(), TestCaseError> {
    match parse(text, "fuzz") {
        Ok(v) => {
            let c = &v.config;
            prop_assert!(!c.listeners.is_empty());
            for l in &c.listeners {
                // TCP and UDP listeners always have a pool; HTTP(S) ones may not.
                prop_assert!(l.pool.is_some() || l.protocol.is_http());
                prop_assert_eq!(l.tls.is_some(), l.protocol == weir_config::Protocol::Https);
                prop_assert!(l.pool.is_none_or(|p| p < c.pools.len()));
                if let Some(h) = &l.http {
                    for r in &h.routes {
                        if let weir_config::http::RouteAction::Forward { pool, .. } = r.action {
                            prop_assert!(pool < c.pools.len());
                        }
                    }
                }
                prop_assert!(!l.bind.is_empty());
                prop_assert!((1..=8).contains(&l.connect_attempts));
                prop_assert!(!l.connect_timeout.is_zero() && !l.idle_timeout.is_zero());
            }
            for p in &c.pools {
                prop_assert!(!p.backends.is_empty());
                for b in &p.backends {
                    prop_assert!((1..=256).contains(&b.weight));
                    prop_assert!(b.addr.port() != 0);
                }
            }
            // The summary `weir check` prints must not panic either.
            let _ = c.summary();
        }
        Err(LoadError::Syntax(message)) => {
            let rest = message.strip_prefix("fuzz:");
            prop_assert!(rest.is_some(), "{message}");
            let mut parts = rest.unwrap_or_default().splitn(3, ':');
            if let (Some(line), Some(column)) = (parts.next(), parts.next())
                && let (Ok(line), Ok(column)) = (line.parse::<usize>(), column.parse::<usize>())
            {
                prop_assert!(line >= 1 && line <= text.lines().count() + 1, "{message}");
                prop_assert!(column >= 1, "{message}");
            }
        }
        Err(LoadError::Invalid(errors)) => {
            prop_assert!(!errors.is_empty());
            for e in &errors {
                prop_assert!(!e.path.is_empty() && !e.message.is_empty(), "{e:?}");
            }
        }
        Err(LoadError::Io { .. }) => prop_assert!(false, "parse never does i/o"),
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    ReplaceChar(usize, char),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    DeleteLine(usize),
    /// Replaces the value of a `key = value` line.
    ReplaceValue(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let any_pos = any::<usize>();
    prop_oneof![
        1 => (any_pos, 1..20usize).prop_map(|(p, n)| Mutation::Delete(p, n)),
        1 => (any_pos, prop::sample::select(TOKENS)).prop_map(|(p, t)| Mutation::Insert(p, t.into())),
        1 => (any_pos, prop::sample::select(VALUES)).prop_map(|(p, t)| Mutation::Insert(p, t.into())),
        1 => (any_pos, any::<String>()).prop_map(|(p, s)| Mutation::Insert(p, s)),
        1 => (any_pos, any::<char>()).prop_map(|(p, c)| Mutation::ReplaceChar(p, c)),
        1 => any_pos.prop_map(Mutation::DuplicateLine),
        1 => (any_pos, any_pos).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        1 => any_pos.prop_map(Mutation::DeleteLine),
        // Most often: a wrong value in a valid file, which reaches validation.
        4 => (any_pos, prop::sample::select(VALUES))
            .prop_map(|(p, v)| Mutation::ReplaceValue(p, v.into())),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let at = |p: usize, len: usize| if len == 0 { 0 } else { p % (len + 1) };
    match m {
        Mutation::Delete(p, n) => {
            let start = at(*p, chars.len());
            let end = (start + n).min(chars.len());
            chars.drain(start..end);
            chars.into_iter().collect()
        }
        Mutation::Insert(p, s) => {
            let i = at(*p, chars.len());
            chars.splice(i..i, s.chars());
            chars.into_iter().collect()
        }
        Mutation::ReplaceChar(p, c) => {
            if !chars.is_empty() {
                let i = p % chars.len();
                chars[i] = *c;
            }
            chars.into_iter().collect()
        }
        Mutation::DuplicateLine(p) => {
            let i = p % lines.len();
            let line = lines[i].clone();
            lines.insert(i, line);
            lines.join("\n")
        }
        Mutation::SwapLines(a, b) => {
            let (a, b) = (a % lines.len(), b % lines.len());
            lines.swap(a, b);
            lines.join("\n")
        }
        Mutation::DeleteLine(p) => {
            let i = p % lines.len();
            lines.remove(i);
            lines.join("\n")
        }
        Mutation::ReplaceValue(p, v) => {
            let keyed: Vec<usize> = (0..lines.len())
                .filter(|&i| !lines[i].trim_start().starts_with('#') && lines[i].contains(" = "))
                .collect();
            if let Some(&i) = keyed.get(p % keyed.len().max(1)) {
                let key = lines[i].split(" = ").next().unwrap_or_default().to_owned();
                lines[i] = format!("{key} = {v}");
            }
            lines.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn token_soup(tokens in prop::collection::vec(
        prop_oneof![prop::sample::select(TOKENS), prop::sample::select(VALUES)], 0..80,
    )) {
        check(&tokens.concat())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_valid_configs(
        seed in prop::sample::select(SEEDS),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut text = seed.to_owned();
        for m in &mutations {
            text = apply(&text, m);
        }
        check(&text)?;
    }
}

/// A file cut off anywhere (a half-written save, a truncated copy) is an
/// error, never a panic.
#[test]
fn every_truncation_of_the_reference() {
    let text = SEEDS[0];
    for (i, _) in text.char_indices() {
        check(&text[..i]).unwrap();
    }
}
