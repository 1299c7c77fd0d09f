//! Table-driven validation tests for rate limits: `[[rate_limits]]`,
//! `[redis]`, routes' `rate_limits`, and TCP listeners' per-client limits.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use support::{ONE, assert_lines, doc, errors, warnings};
use weir_config::parse;
use weir_config::rate_limit::{KeyPart, OnError, Scope};

/// An HTTP listener with one route using `limits`, plus `top` (policies,
/// `[redis]`) before it.
fn http(top: &str, limits: &str) -> String {
    format!(
        "{top}\n\n[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\nprotocol = \"http\"\n\n\
         [[listeners.routes]]\npool = \"web\"\nrate_limits = {limits}\n\n\
         [[pools]]\nname = \"web\"\n{ONE}\n"
    )
}

fn policy(keys: &str) -> String {
    format!("[[rate_limits]]\nname = \"a\"\nrate = \"10/s\"\n{keys}\n")
}

const REDIS: &str = "[redis]\naddress = \"127.0.0.1:6379\"\n";

#[test]
fn rate_limit_errors_table() {
    let p = "rate_limits[0]";
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "bad rate",
            http(&policy("").replace("10/s", "10/sec"), "[\"a\"]"),
            vec![format!(
                "{p}.rate: invalid rate \"10/sec\"; expected <count>/<unit> with unit s, m or h, like \"100/s\" or \"600/m\""
            )],
        ),
        (
            "zero rate",
            http(&policy("").replace("10/s", "0/m"), "[\"a\"]"),
            vec![format!(
                "{p}.rate: rate \"0/m\": count 0 is out of range; expected 1 to 1000000000"
            )],
        ),
        (
            "zero burst",
            http(&policy("burst = 0"), "[\"a\"]"),
            vec![format!("{p}.burst: 0 is out of range; expected 1 to 1000000000")],
        ),
        (
            "unknown key and a twice-listed one",
            http(
                &policy("key = [\"client_ip\", \"cookie:x\", \"client_ip\", \"header:bad name\"]"),
                "[\"a\"]",
            ),
            vec![
                format!("{p}.key: unknown key \"cookie:x\"; expected \"client_ip\", \"header:NAME\", \"claim:NAME\" or \"route\""),
                format!("{p}.key: key part \"client_ip\" is listed twice"),
                format!("{p}.key: unknown key \"header:bad name\"; expected \"client_ip\", \"header:NAME\", \"claim:NAME\" or \"route\""),
            ],
        ),
        (
            "empty key list",
            http(&policy("key = []"), "[\"a\"]"),
            vec![format!("{p}.key: at least one key part is required")],
        ),
        (
            "global without redis",
            http(&policy("scope = \"global\""), "[\"a\"]"),
            vec![format!("{p}.scope: a global rate limit needs a [redis] section")],
        ),
        (
            "bad scope and on_error",
            http(
                &format!("{REDIS}{}", policy("scope = \"fleet\"\non_error = \"open\"")),
                "[\"a\"]",
            ),
            vec![
                format!("{p}.scope: unknown value \"fleet\"; expected one of: local, global"),
                format!("{p}.on_error: unknown value \"open\"; expected one of: fail_open, fail_closed"),
                format!("{p}.on_error: only applies to a rate limit with scope = \"global\""),
            ],
        ),
        (
            "timeout on a local policy",
            http(&policy("timeout = \"10ms\""), "[\"a\"]"),
            vec![format!("{p}.timeout: only applies to a rate limit with scope = \"global\"")],
        ),
        (
            "duplicate names",
            http(&format!("{}{}", policy(""), policy("")), "[\"a\"]"),
            vec!["rate_limits[1].name: duplicate rate limit name \"a\"".into()],
        ),
        (
            "unknown policy on a route, and one listed twice",
            http(&policy(""), "[\"a\", \"b\", \"a\"]"),
            vec![
                "listeners[0].routes[0].rate_limits: no rate limit named \"b\"".into(),
                "listeners[0].routes[0].rate_limits: rate limit \"a\" is listed twice".into(),
            ],
        ),
        (
            "bad redis address and a missing password file",
            http(
                &format!(
                    "[redis]\naddress = \"localhost\"\npassword_file = \"/nonexistent/x\"\npassword_env = \"WEIR_TEST_NO_SUCH_VAR\"\n{}",
                    policy("scope = \"global\"")
                ),
                "[\"a\"]",
            ),
            vec![
                "redis.address: invalid address \"localhost\"; expected host:port like \"127.0.0.1:6379\"".into(),
                "redis.password_file: cannot read \"/nonexistent/x\": …".into(),
            ],
        ),
        (
            "password env var missing",
            http(
                &format!(
                    "[redis]\naddress = \"127.0.0.1:6379\"\npassword_env = \"WEIR_TEST_NO_SUCH_VAR\"\n{}",
                    policy("scope = \"global\"")
                ),
                "[\"a\"]",
            ),
            vec!["redis.password_env: environment variable \"WEIR_TEST_NO_SUCH_VAR\" is not set (or not UTF-8)".into()],
        ),
        (
            "per-client limits on an http listener",
            format!(
                "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\nprotocol = \"http\"\npool = \"web\"\nmax_connections_per_client = 5\n\n[[pools]]\nname = \"web\"\n{ONE}\n"
            ),
            vec!["listeners[0].max_connections_per_client: only applies to tcp listeners; this listener's protocol is \"http\"".into()],
        ),
        (
            "per-client limit errors",
            doc(
                "max_connections_per_client = 0\nconnection_rate_per_client = \"5/d\"\nconnection_burst_per_client = 0",
                ONE,
            ),
            vec![
                "listeners[0].max_connections_per_client: 0 is out of range; expected 1 to 1000000".into(),
                "listeners[0].connection_rate_per_client: invalid rate \"5/d\"; expected <count>/<unit> with unit s, m or h, like \"100/s\" or \"600/m\"".into(),
            ],
        ),
        (
            "burst without a rate",
            doc("connection_burst_per_client = 3", ONE),
            vec!["listeners[0].connection_burst_per_client: only applies with connection_rate_per_client".into()],
        ),
    ];
    for (name, text, want) in &cases {
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        assert_lines(name, text, &errors(text), &want);
    }
}

#[test]
fn rate_limits_on_a_redirect_route_are_an_error() {
    let text = format!(
        "{}\n[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\nprotocol = \"http\"\npool = \"web\"\n\n\
         [[listeners.routes]]\nredirect = \"https://x.test/\"\nrate_limits = [\"a\"]\n\n[[pools]]\nname = \"web\"\n{ONE}\n",
        policy("")
    );
    assert_lines(
        "redirect",
        &text,
        &errors(&text),
        &["listeners[0].routes[0].rate_limits: only applies to a route with a pool"],
    );
}

#[test]
fn unused_policies_and_redis_are_warned_about() {
    let text = http(
        &format!(
            "{REDIS}{}{}",
            policy(""),
            policy("").replace("\"a\"", "\"b\"")
        ),
        "[\"a\"]",
    );
    assert_lines(
        "unused",
        &text,
        &warnings(&text),
        &[
            "redis: no rate limit has scope = \"global\"; [redis] is unused",
            "rate_limits[1]: rate limit \"b\" is not used by any route",
        ],
    );
}

#[test]
fn policies_reach_the_typed_config() {
    let dir = std::env::temp_dir().join(format!("weir-rl-pw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pw"), "s3cret\n").unwrap();
    let text = http(
        &format!(
            "[redis]\naddress = \"127.0.0.1:6380\"\npassword_file = \"pw\"\nkey_prefix = \"t:\"\n\n\
             [[rate_limits]]\nname = \"g\"\nrate = \"600/m\"\nburst = 20\nkey = [\"header:X-Api-Key\", \"route\", \"claim:sub\"]\n\
             scope = \"global\"\non_error = \"fail_closed\"\ntimeout = \"20ms\"\ndry_run = true\nheaders = true\n\n{}",
            policy("")
        ),
        "[\"a\", \"g\"]",
    );
    let v = weir_config::parse_in(&text, "t", &dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let c = v.config;
    let redis = c.redis.as_ref().unwrap();
    assert_eq!((redis.host.as_str(), redis.port), ("127.0.0.1", 6380));
    assert_eq!(redis.password.as_ref().unwrap().expose(), "s3cret");
    assert!(!format!("{c:?}").contains("s3cret"));
    assert_eq!(redis.key_prefix, "t:");
    assert_eq!(redis.connect_timeout, Duration::from_secs(1));
    let a = &c.rate_limits[1];
    assert_eq!(
        (a.count, a.period, a.burst),
        (10, Duration::from_secs(1), 10)
    );
    assert_eq!(a.key, [KeyPart::ClientIp]);
    assert_eq!(
        (a.scope, a.on_error, a.dry_run, a.headers),
        (Scope::Local, OnError::FailOpen, false, false)
    );
    let g = &c.rate_limits[0];
    assert_eq!(
        (g.count, g.period, g.burst),
        (600, Duration::from_secs(60), 20)
    );
    assert_eq!(
        g.key,
        [
            KeyPart::Header("x-api-key".into()),
            KeyPart::Route,
            KeyPart::Claim("sub".into())
        ]
    );
    assert_eq!(
        (g.scope, g.on_error, g.timeout),
        (
            Scope::Global,
            OnError::FailClosed,
            Duration::from_millis(20)
        )
    );
    assert!(g.dry_run && g.headers);
    let route = &c.listeners[0].http.as_ref().unwrap().routes[0];
    assert_eq!(route.rate_limits, [1, 0]);

    let tcp = parse(
        &doc(
            "max_connections_per_client = 4\nconnection_rate_per_client = \"20/s\"",
            ONE,
        ),
        "t",
    )
    .unwrap()
    .config;
    let limits = tcp.listeners[0].client_limits;
    assert_eq!(limits.max_connections, Some(4));
    assert_eq!(limits.rate, Some((20, Duration::from_secs(1), 20)));
}
