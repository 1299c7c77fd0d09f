//! Table-driven validation tests: config text → the exact list of errors
//! (`path: message`) or warnings that `weir check` prints for it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use support::{ONE, assert_lines, doc, errors, warnings};
use weir_config::parse;

/// Every error line of a config that must not validate.
/// Every warning of a config that must validate.
#[test]
fn the_base_config_is_valid() {
    assert_lines("base", &doc("", ONE), &warnings(&doc("", ONE)), &[]);
}

#[test]
fn errors_table() {
    let hc = |keys: &str| format!("{ONE}\n[pools.health_check]\n{keys}");
    let two = |a: &str, b: &str| format!("backends = [{a}, {b}]");
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        // ---- listeners and pools
        (
            "no listeners",
            format!("[[pools]]\nname = \"pg\"\n{ONE}\n"),
            vec!["listeners: at least one listener is required"],
        ),
        (
            "listener names a missing pool",
            format!(
                "{}\n[[listeners]]\nname = \"db2\"\nbind = \"127.0.0.1:6001\"\npool = \"db\"\n",
                doc("", ONE)
            ),
            vec!["listeners[1].pool: no pool named \"db\""],
        ),
        (
            "duplicate listener name",
            format!(
                "{}\n[[listeners]]\nname = \"db\"\nbind = \"127.0.0.1:6001\"\npool = \"pg\"\n",
                doc("", ONE)
            ),
            vec!["listeners[1].name: duplicate listener name \"db\""],
        ),
        (
            "empty listener name",
            doc("", ONE).replace("name = \"db\"", "name = \" \""),
            vec!["listeners[0].name: must not be empty"],
        ),
        (
            "duplicate pool name",
            format!("{}\n[[pools]]\nname = \"pg\"\n{ONE}\n", doc("", ONE)),
            vec!["pools[1].name: duplicate pool name \"pg\""],
        ),
        (
            "empty pool name",
            format!("{}\n[[pools]]\nname = \"\"\n{ONE}\n", doc("", ONE)),
            vec!["pools[1].name: must not be empty"],
        ),
        (
            "unknown http_version",
            doc("", &format!("http_version = \"http3\"\n{ONE}")),
            vec!["pools[0].http_version: unknown value \"http3\"; expected one of: http1, h2c, h2"],
        ),
        (
            "h2 without TLS",
            doc("", &format!("http_version = \"h2\"\n{ONE}")),
            vec![
                "pools[0].http_version: \"h2\" is HTTP/2 over TLS and needs [pools.tls]; use \"h2c\" for cleartext HTTP/2",
            ],
        ),
        (
            "unknown protocol",
            doc("protocol = \"sctp\"", ONE),
            vec![
                "listeners[0].protocol: unknown value \"sctp\"; expected one of: tcp, udp, http, https",
            ],
        ),
        (
            "tcp-only keys on a udp listener",
            doc(
                "protocol = \"udp\"\nmax_connections = 5\nsplice = false",
                ONE,
            ),
            vec![
                "listeners[0].max_connections: only applies to tcp, http and https listeners; this listener's protocol is \"udp\"",
                "listeners[0].splice: only applies to tcp listeners; this listener's protocol is \"udp\"",
            ],
        ),
        (
            "udp-only keys on a tcp listener",
            doc("responses = 1\nmax_flows = 10", ONE),
            vec![
                "listeners[0].responses: only applies to udp listeners; this listener's protocol is \"tcp\"",
                "listeners[0].max_flows: only applies to udp listeners; this listener's protocol is \"tcp\"",
            ],
        ),
        (
            "udp values out of range",
            doc(
                "protocol = \"udp\"\nresponses = 0\nmax_datagram_size = 70000\nsockets = 65",
                ONE,
            ),
            vec![
                "listeners[0].responses: 0 is out of range; expected 1 to 1000000",
                "listeners[0].max_datagram_size: 70000 is out of range; expected 1 to 65507",
                "listeners[0].sockets: 65 is out of range; expected 1 to 64",
            ],
        ),
        (
            "udp check without a datagram to send",
            doc("protocol = \"udp\"", &hc("type = \"udp\"\nexpect = \"x\"")),
            vec![
                "pools[0].health_check.send: udp checks need a non-empty send (or send_hex): a datagram to ask with",
            ],
        ),
        (
            "two udp listeners on one address",
            format!(
                "{}\n[[listeners]]\nname = \"db2\"\nbind = \"127.0.0.1:6000\"\nprotocol = \"udp\"\npool = \"pg\"\n",
                doc("protocol = \"udp\"", ONE)
            ),
            vec![
                "listeners[1].bind[0]: address 127.0.0.1:6000 is already used by listeners[0].bind[0]",
            ],
        ),
        // ---- bind addresses
        (
            "bind address used by two listeners",
            format!(
                "{}\n[[listeners]]\nname = \"db2\"\nbind = [\"127.0.0.1:6001\", \"127.0.0.1:6000\"]\npool = \"pg\"\n",
                doc("", ONE)
            ),
            vec![
                "listeners[1].bind[1]: address 127.0.0.1:6000 is already used by listeners[0].bind[0]",
            ],
        ),
        (
            "bind address twice in one listener",
            doc("", ONE).replace(
                "bind = \"127.0.0.1:6000\"",
                "bind = [\"127.0.0.1:6000\", \"127.0.0.1:6000\"]",
            ),
            vec![
                "listeners[0].bind[1]: address 127.0.0.1:6000 is already used by listeners[0].bind[0]",
            ],
        ),
        (
            "bind address is the admin address",
            format!("[admin]\naddress = \"127.0.0.1:6000\"\n{}", doc("", ONE)),
            vec!["listeners[0].bind[0]: address 127.0.0.1:6000 is already used by admin.address"],
        ),
        (
            "bind address is the default admin address",
            doc("", ONE).replace("127.0.0.1:6000", "127.0.0.1:9090"),
            vec!["listeners[0].bind[0]: address 127.0.0.1:9090 is already used by admin.address"],
        ),
        (
            "invalid bind address",
            doc("", ONE).replace("127.0.0.1:6000", "localhost:6000"),
            vec![
                "listeners[0].bind[0]: invalid address \"localhost:6000\"; expected IP:port like \"0.0.0.0:5432\" or \"[::]:5432\"",
            ],
        ),
        (
            "bind address without port",
            doc("", ONE).replace("127.0.0.1:6000", "127.0.0.1"),
            vec![
                "listeners[0].bind[0]: invalid address \"127.0.0.1\"; expected IP:port like \"0.0.0.0:5432\" or \"[::]:5432\"",
            ],
        ),
        (
            "empty bind list",
            doc("", ONE).replace("bind = \"127.0.0.1:6000\"", "bind = []"),
            vec!["listeners[0].bind: at least one address is required"],
        ),
        (
            "invalid admin address, even when disabled",
            format!(
                "[admin]\nenabled = false\naddress = \"9090\"\n{}",
                doc("", ONE)
            ),
            vec![
                "admin.address: invalid address \"9090\"; expected IP:port like \"127.0.0.1:9090\"",
            ],
        ),
        // ---- listener numbers and durations
        (
            "connect_attempts 0",
            doc("connect_attempts = 0", ONE),
            vec!["listeners[0].connect_attempts: 0 is out of range; expected 1 to 8"],
        ),
        (
            "connect_attempts 9",
            doc("connect_attempts = 9", ONE),
            vec!["listeners[0].connect_attempts: 9 is out of range; expected 1 to 8"],
        ),
        (
            "max_connections 0",
            doc("max_connections = 0", ONE),
            vec!["listeners[0].max_connections: 0 is out of range; expected 1 to 10000000"],
        ),
        (
            "backlog 0",
            doc("backlog = 0", ONE),
            vec!["listeners[0].backlog: 0 is out of range; expected 1 to 65535"],
        ),
        (
            "worker_threads 0",
            format!("[runtime]\nworker_threads = 0\n{}", doc("", ONE)),
            vec!["runtime.worker_threads: 0 is out of range; expected 1 to 1024"],
        ),
        (
            "zero timeouts",
            doc("connect_timeout = \"0s\"\nidle_timeout = \"0ms\"", ONE),
            vec![
                "listeners[0].connect_timeout: duration \"0s\" must be greater than zero",
                "listeners[0].idle_timeout: duration \"0ms\" must be greater than zero",
            ],
        ),
        (
            "zero shutdown grace and fail timeout",
            format!(
                "[runtime]\nshutdown_grace = \"0s\"\n{}",
                doc("", &format!("fail_timeout = \"0s\"\n{ONE}"))
            ),
            vec![
                "runtime.shutdown_grace: duration \"0s\" must be greater than zero",
                "pools[0].fail_timeout: duration \"0s\" must be greater than zero",
            ],
        ),
        (
            "duration without a unit",
            doc("connect_timeout = \"5\"", ONE),
            vec!["listeners[0].connect_timeout: duration \"5\" needs a unit (ms, s, m, h, d)"],
        ),
        (
            "duration with an unknown unit",
            doc("idle_timeout = \"5min\"", ONE),
            vec![
                "listeners[0].idle_timeout: unknown unit \"min\" in duration \"5min\"; use ms, s, m, h or d",
            ],
        ),
        (
            "duration that is not one",
            doc("idle_timeout = \"soon\"", ONE),
            vec![
                "listeners[0].idle_timeout: invalid duration \"soon\"; expected e.g. \"5s\", \"250ms\", \"1m30s\"",
            ],
        ),
        (
            "empty duration",
            doc("connect_timeout = \"\"", ONE),
            vec!["listeners[0].connect_timeout: empty duration; expected e.g. \"5s\" or \"250ms\""],
        ),
        (
            "keepalive longer than the kernel allows",
            doc("keepalive = \"10h\"", ONE),
            vec![
                "listeners[0].keepalive: keepalive \"10h\" is out of range; expected 1s to 32767s (the kernel's limit), or \"off\"",
            ],
        ),
        (
            "keepalive under a second",
            doc("keepalive = \"500ms\"", ONE),
            vec![
                "listeners[0].keepalive: keepalive \"500ms\" is out of range; expected 1s to 32767s (the kernel's limit), or \"off\"",
            ],
        ),
        (
            "keepalive that is neither a duration nor off",
            doc("keepalive = \"no\"", ONE),
            vec![
                "listeners[0].keepalive: invalid duration \"no\"; expected e.g. \"5s\", \"250ms\", \"1m30s\"; or \"off\" to disable keepalive",
            ],
        ),
        // ---- pools and algorithms
        (
            "empty pool",
            doc("", "backends = []"),
            vec!["pools[0].backends: a pool needs at least one backend"],
        ),
        (
            "unknown algorithm",
            doc("", &format!("algorithm = \"fastest\"\n{ONE}")),
            vec![
                "pools[0].algorithm: unknown value \"fastest\"; expected one of: round_robin, weighted_round_robin, least_connections, random_two_choices, maglev, ring_hash",
            ],
        ),
        (
            "unknown algorithm does not pile up option errors",
            doc(
                "",
                &format!("algorithm = \"maglve\"\nmaglev_table_size = 65537\n{ONE}"),
            ),
            vec![
                "pools[0].algorithm: unknown value \"maglve\"; expected one of: round_robin, weighted_round_robin, least_connections, random_two_choices, maglev, ring_hash",
            ],
        ),
        (
            "unknown hash_key",
            doc(
                "",
                &format!("algorithm = \"maglev\"\nhash_key = \"source\"\n{ONE}"),
            ),
            vec![
                "pools[0].hash_key: unknown value \"source\"; expected one of: client_ip, client_ip_port, header:NAME, cookie:NAME, path",
            ],
        ),
        (
            "maglev table size not prime",
            doc(
                "",
                &format!("algorithm = \"maglev\"\nmaglev_table_size = 65536\n{ONE}"),
            ),
            vec![
                "pools[0].maglev_table_size: 65536 must be a prime no larger than 1000003 (e.g. 65537)",
            ],
        ),
        (
            "maglev table size prime but too large",
            doc(
                "",
                &format!("algorithm = \"maglev\"\nmaglev_table_size = 1000033\n{ONE}"),
            ),
            vec![
                "pools[0].maglev_table_size: 1000033 must be a prime no larger than 1000003 (e.g. 65537)",
            ],
        ),
        (
            "maglev table size on a non-maglev pool",
            doc(
                "",
                &format!("algorithm = \"ring_hash\"\nmaglev_table_size = 65537\n{ONE}"),
            ),
            vec![
                "pools[0].maglev_table_size: only applies to algorithm \"maglev\", not \"ring_hash\"",
            ],
        ),
        (
            "maglev table size on a default (round_robin) pool",
            doc("", &format!("maglev_table_size = 65537\n{ONE}")),
            vec![
                "pools[0].maglev_table_size: only applies to algorithm \"maglev\", not \"round_robin\"",
            ],
        ),
        (
            "balance factor 1",
            doc(
                "",
                &format!("algorithm = \"ring_hash\"\nbalance_factor = 1.0\n{ONE}"),
            ),
            vec!["pools[0].balance_factor: 1 must be greater than 1.0 (e.g. 1.25)"],
        ),
        (
            "balance factor below 1",
            doc(
                "",
                &format!("algorithm = \"ring_hash\"\nbalance_factor = 0.5\n{ONE}"),
            ),
            vec!["pools[0].balance_factor: 0.5 must be greater than 1.0 (e.g. 1.25)"],
        ),
        (
            "balance factor not a number",
            doc(
                "",
                &format!("algorithm = \"ring_hash\"\nbalance_factor = nan\n{ONE}"),
            ),
            vec!["pools[0].balance_factor: NaN must be greater than 1.0 (e.g. 1.25)"],
        ),
        (
            "balance factor on a non-ring_hash pool",
            doc(
                "",
                &format!("algorithm = \"maglev\"\nbalance_factor = 1.25\n{ONE}"),
            ),
            vec![
                "pools[0].balance_factor: only applies to algorithm \"ring_hash\", not \"maglev\"",
            ],
        ),
        // ---- backends
        (
            "weight 0",
            doc(
                "",
                "backends = [{ address = \"127.0.0.1:5432\", weight = 0 }]",
            ),
            vec![
                "pools[0].backends[0].weight: 0 is out of range; expected 1 to 256 (drain a backend instead of weight 0)",
            ],
        ),
        (
            "weight 257",
            doc(
                "",
                "backends = [{ address = \"127.0.0.1:5432\", weight = 257 }]",
            ),
            vec![
                "pools[0].backends[0].weight: 257 is out of range; expected 1 to 256 (drain a backend instead of weight 0)",
            ],
        ),
        (
            "duplicate backend address",
            doc(
                "",
                &two(
                    "{ address = \"127.0.0.1:5432\" }",
                    "{ address = \"127.0.0.1:5432\", name = \"b\" }",
                ),
            ),
            vec!["pools[0].backends[1].address: duplicate backend \"127.0.0.1:5432\" in this pool"],
        ),
        (
            "duplicate backend name",
            doc(
                "",
                &two(
                    "{ name = \"a\", address = \"127.0.0.1:5432\" }",
                    "{ name = \"a\", address = \"127.0.0.1:5433\" }",
                ),
            ),
            vec!["pools[0].backends[1].name: duplicate backend name \"a\" in this pool"],
        ),
        (
            "backend name equal to another backend's default name",
            doc(
                "",
                &two(
                    "{ address = \"127.0.0.1:5432\" }",
                    "{ name = \"127.0.0.1:5432\", address = \"127.0.0.1:5433\" }",
                ),
            ),
            vec![
                "pools[0].backends[1].name: duplicate backend name \"127.0.0.1:5432\" in this pool",
            ],
        ),
        (
            "empty backend name",
            doc(
                "",
                "backends = [{ name = \"\", address = \"127.0.0.1:5432\" }]",
            ),
            vec!["pools[0].backends[0].name: must not be empty"],
        ),
        (
            "unresolvable backend host",
            doc("", "backends = [{ address = \"db.invalid:5432\" }]"),
            vec!["pools[0].backends[0].address: cannot resolve host \"db.invalid\": …"],
        ),
        (
            "backend address without port",
            doc("", "backends = [{ address = \"db1\" }]"),
            vec![
                "pools[0].backends[0].address: invalid address \"db1\"; expected host:port like \"db1:5432\"",
            ],
        ),
        (
            "backend address with a bad port",
            doc("", "backends = [{ address = \"db1:postgres\" }]"),
            vec![
                "pools[0].backends[0].address: invalid address \"db1:postgres\"; expected host:port like \"db1:5432\"",
            ],
        ),
        (
            "backend port 0",
            doc("", "backends = [{ address = \"127.0.0.1:0\" }]"),
            vec![
                "pools[0].backends[0].address: address \"127.0.0.1:0\" has port 0; a backend needs the port it listens on",
            ],
        ),
        // ---- health checks
        (
            "unknown health check type",
            doc("", &hc("type = \"grpc\"")),
            vec![
                "pools[0].health_check.type: unknown value \"grpc\"; expected one of: tcp, send_expect, udp, http",
            ],
        ),
        // ---- http health checks
        (
            "http keys on a tcp check",
            doc(
                "",
                &hc(
                    "path = \"/healthz\"\nmethod = \"HEAD\"\nhost = \"a\"\nexpect_status = \"200\"",
                ),
            ),
            vec![
                "pools[0].health_check.path: only applies to type \"http\", not \"tcp\"",
                "pools[0].health_check.method: only applies to type \"http\", not \"tcp\"",
                "pools[0].health_check.host: only applies to type \"http\", not \"tcp\"",
                "pools[0].health_check.expect_status: only applies to type \"http\", not \"tcp\"",
            ],
        ),
        (
            "http keys on a send_expect check",
            doc(
                "",
                &hc("type = \"send_expect\"\nexpect = \"+PONG\"\npath = \"/\""),
            ),
            vec!["pools[0].health_check.path: only applies to type \"http\", not \"send_expect\""],
        ),
        (
            "send/expect keys on an http check",
            doc(
                "",
                &hc("type = \"http\"\nsend = \"x\"\nexpect_hex = \"78\""),
            ),
            vec![
                "pools[0].health_check.send: only applies to type \"send_expect\" or \"udp\", not \"http\"",
                "pools[0].health_check.expect_hex: only applies to type \"send_expect\" or \"udp\", not \"http\"",
            ],
        ),
        (
            "http path without a leading slash",
            doc("", &hc("type = \"http\"\npath = \"healthz\"")),
            vec!["pools[0].health_check.path: path \"healthz\" must start with \"/\""],
        ),
        (
            "http path with a space",
            doc("", &hc("type = \"http\"\npath = \"/health z\"")),
            vec![
                "pools[0].health_check.path: path \"/health z\" must be visible ASCII without spaces (percent-encode the rest)",
            ],
        ),
        (
            "http path that would split the request",
            doc("", &hc("type = \"http\"\npath = \"/\\r\\nX: y\"")),
            vec![
                "pools[0].health_check.path: path \"/\\r\\nX: y\" must be visible ASCII without spaces (percent-encode the rest)",
            ],
        ),
        (
            "http method that is not a token",
            doc("", &hc("type = \"http\"\nmethod = \"GET /\"")),
            vec![
                "pools[0].health_check.method: invalid method \"GET /\"; expected an HTTP token like \"GET\" or \"HEAD\"",
            ],
        ),
        (
            "empty http method",
            doc("", &hc("type = \"http\"\nmethod = \"\"")),
            vec![
                "pools[0].health_check.method: invalid method \"\"; expected an HTTP token like \"GET\" or \"HEAD\"",
            ],
        ),
        (
            "http host with a space",
            doc("", &hc("type = \"http\"\nhost = \"a b\"")),
            vec![
                "pools[0].health_check.host: host \"a b\" must be non-empty visible ASCII, without spaces or control characters",
            ],
        ),
        (
            "http host with a line break",
            doc("", &hc("type = \"http\"\nhost = \"a\\r\\nX: y\"")),
            vec![
                "pools[0].health_check.host: host \"a\\r\\nX: y\" must be non-empty visible ASCII, without spaces or control characters",
            ],
        ),
        (
            "empty http host",
            doc("", &hc("type = \"http\"\nhost = \"\"")),
            vec![
                "pools[0].health_check.host: host \"\" must be non-empty visible ASCII, without spaces or control characters",
            ],
        ),
        (
            "http status that is not a code or range",
            doc("", &hc("type = \"http\"\nexpect_status = \"2xx\"")),
            vec![
                "pools[0].health_check.expect_status: invalid status \"2xx\"; expected a code like \"204\" or a range like \"200-399\"",
            ],
        ),
        (
            "http status range with a missing end",
            doc("", &hc("type = \"http\"\nexpect_status = \"200-\"")),
            vec![
                "pools[0].health_check.expect_status: invalid status \"200-\"; expected a code like \"204\" or a range like \"200-399\"",
            ],
        ),
        (
            "http status outside 100 to 599",
            doc("", &hc("type = \"http\"\nexpect_status = \"200-600\"")),
            vec!["pools[0].health_check.expect_status: status \"200-600\" is outside 100 to 599"],
        ),
        (
            "http status below 100",
            doc("", &hc("type = \"http\"\nexpect_status = \"099\"")),
            vec!["pools[0].health_check.expect_status: status \"099\" is outside 100 to 599"],
        ),
        (
            "reversed http status range",
            doc("", &hc("type = \"http\"\nexpect_status = \"399-200\"")),
            vec![
                "pools[0].health_check.expect_status: status range \"399-200\" is reversed; write \"200-399\"",
            ],
        ),
        (
            "http values are checked even when the type is unknown",
            doc("", &hc("type = \"htp\"\npath = \"x\"")),
            vec![
                "pools[0].health_check.type: unknown value \"htp\"; expected one of: tcp, send_expect, udp, http",
                "pools[0].health_check.path: path \"x\" must start with \"/\"",
            ],
        ),
        (
            "send_expect without expect",
            doc("", &hc("type = \"send_expect\"\nsend = \"PING\\r\\n\"")),
            vec![
                "pools[0].health_check.expect: send_expect checks need a non-empty expect (or expect_hex)",
            ],
        ),
        (
            "send_expect with an empty expect",
            doc("", &hc("type = \"send_expect\"\nexpect = \"\"")),
            vec![
                "pools[0].health_check.expect: send_expect checks need a non-empty expect (or expect_hex)",
            ],
        ),
        (
            "both send and send_hex",
            doc(
                "",
                &hc(
                    "type = \"send_expect\"\nsend = \"PING\\r\\n\"\nsend_hex = \"50494e470d0a\"\nexpect = \"+PONG\"",
                ),
            ),
            vec!["pools[0].health_check.send_hex: set either send or send_hex, not both"],
        ),
        (
            "both expect and expect_hex",
            doc(
                "",
                &hc("type = \"send_expect\"\nexpect = \"+PONG\"\nexpect_hex = \"2b504f4e47\""),
            ),
            vec!["pools[0].health_check.expect_hex: set either expect or expect_hex, not both"],
        ),
        (
            "hex that is not hex",
            doc(
                "",
                &hc("type = \"send_expect\"\nsend_hex = \"50zz\"\nexpect = \"+PONG\""),
            ),
            vec!["pools[0].health_check.send_hex: invalid hex \"50zz\""],
        ),
        (
            "bad expect_hex is one error, not two",
            doc("", &hc("type = \"send_expect\"\nexpect_hex = \"zz\"")),
            vec!["pools[0].health_check.expect_hex: invalid hex \"zz\""],
        ),
        (
            "hex with spaces is fine, empty hex expect is not",
            doc(
                "",
                &hc("type = \"send_expect\"\nsend_hex = \"50 49 4e 47\"\nexpect_hex = \" \""),
            ),
            vec![
                "pools[0].health_check.expect: send_expect checks need a non-empty expect (or expect_hex)",
            ],
        ),
        (
            "hex with an odd number of digits",
            doc("", &hc("type = \"send_expect\"\nexpect_hex = \"2b5\"")),
            vec!["pools[0].health_check.expect_hex: hex \"2b5\" has an odd number of digits"],
        ),
        (
            "send on a tcp check",
            doc("", &hc("send = \"PING\\r\\n\"")),
            vec![
                "pools[0].health_check.type: send/expect are set but type is \"tcp\"; use type = \"send_expect\"",
            ],
        ),
        (
            "rise and fall out of range",
            doc("", &hc("rise = 0\nfall = 101")),
            vec![
                "pools[0].health_check.rise: 0 is out of range; expected 1 to 100",
                "pools[0].health_check.fall: 101 is out of range; expected 1 to 100",
            ],
        ),
        (
            "zero interval and timeout",
            doc("", &hc("interval = \"0s\"\ntimeout = \"0s\"")),
            vec![
                "pools[0].health_check.interval: duration \"0s\" must be greater than zero",
                "pools[0].health_check.timeout: duration \"0s\" must be greater than zero",
            ],
        ),
    ];
    for (name, text, want) in &cases {
        assert_lines(name, text, &errors(text), want);
    }
}

/// One file with many mistakes reports every one of them, in file order
/// within each section, so a user fixes them all in one round.
#[test]
fn every_error_is_reported_at_once() {
    let text = r#"
[admin]
address = "127.0.0.1:7000"

[runtime]
shutdown_grace = "30"

[[listeners]]
name = "pg"
bind = "127.0.0.1:7000"
pool = "db"
connect_attempts = 0

[[listeners]]
name = "pg"
bind = "0.0.0.0"
pool = "pg"
idle_timeout = "0s"

[[pools]]
name = "pg"
algorithm = "maglev"
maglev_table_size = 1000
backends = [
  { address = "127.0.0.1:5432", weight = 0 },
  { address = "127.0.0.1:5432" },
  { address = "db.invalid:5432" },
]

[pools.health_check]
type = "send_expect"
send = "x"
send_hex = "78"

[[pools]]
name = "empty"
balance_factor = 0.5
backends = []
"#;
    assert_lines(
        "many mistakes",
        text,
        &errors(text),
        &[
            "runtime.shutdown_grace: duration \"30\" needs a unit (ms, s, m, h, d)",
            "pools[0].maglev_table_size: 1000 must be a prime no larger than 1000003 (e.g. 65537)",
            "pools[0].backends[0].weight: 0 is out of range; expected 1 to 256 (drain a backend instead of weight 0)",
            "pools[0].backends[1].address: duplicate backend \"127.0.0.1:5432\" in this pool",
            "pools[0].backends[2].address: cannot resolve host \"db.invalid\": …",
            "pools[0].health_check.send_hex: set either send or send_hex, not both",
            "pools[0].health_check.expect: send_expect checks need a non-empty expect (or expect_hex)",
            "pools[1].balance_factor: only applies to algorithm \"ring_hash\", not \"round_robin\"",
            "pools[1].backends: a pool needs at least one backend",
            "listeners[0].bind[0]: address 127.0.0.1:7000 is already used by admin.address",
            "listeners[0].pool: no pool named \"db\"",
            "listeners[0].connect_attempts: 0 is out of range; expected 1 to 8",
            "listeners[1].name: duplicate listener name \"pg\"",
            "listeners[1].bind[0]: invalid address \"0.0.0.0\"; expected IP:port like \"0.0.0.0:5432\" or \"[::]:5432\"",
            "listeners[1].idle_timeout: duration \"0s\" must be greater than zero",
        ],
    );
}

#[test]
fn tcp_and_udp_listeners_may_share_an_address() {
    let text = format!(
        "{}\n[[listeners]]\nname = \"db-udp\"\nbind = \"127.0.0.1:6000\"\nprotocol = \"udp\"\npool = \"pg\"\n",
        doc("", ONE)
    );
    let v = parse(&text, "test.toml").expect("DNS-style tcp+udp on one port is valid");
    assert_eq!(
        v.config.listeners[1].idle_timeout,
        std::time::Duration::from_secs(30),
        "udp default idle"
    );
    assert!(v.config.listeners[1].udp.is_some());
    assert!(v.config.listeners[0].udp.is_none());
}

#[test]
fn warnings_table() {
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "maglev table under 100 × backends",
            doc(
                "",
                &format!(
                    "algorithm = \"maglev\"\nmaglev_table_size = 251\nbackends = [{}]",
                    (0..3)
                        .map(|i| format!("{{ address = \"127.0.0.1:{}\" }}", 5432 + i))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            vec![
                "pools[0].maglev_table_size: table of 251 is smaller than 100 × 3 backends; the spread will be uneven",
            ],
        ),
        (
            "maglev table of exactly 100 × backends is fine",
            doc(
                "",
                &format!("algorithm = \"maglev\"\nmaglev_table_size = 101\n{ONE}"),
            ),
            vec![],
        ),
        (
            "unused pool",
            format!("{}\n[[pools]]\nname = \"spare\"\n{ONE}\n", doc("", ONE)),
            vec!["pools[1]: pool \"spare\" is not used by any listener"],
        ),
        (
            "h2c on a pool only a tcp listener uses",
            doc("", &format!("http_version = \"h2c\"\n{ONE}")),
            vec![
                "pools[0].http_version: pool \"pg\" is used only by tcp/udp listeners, which forward bytes; \"h2c\" has no effect",
            ],
        ),
        (
            "h2c on a pool an http listener also uses",
            doc("", &format!("http_version = \"h2c\"\n{ONE}"))
                + "\n[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\nprotocol = \"http\"\npool = \"pg\"\n",
            vec![],
        ),
        (
            "http1 on a tcp pool is the default, no warning",
            doc("", &format!("http_version = \"http1\"\n{ONE}")),
            vec![],
        ),
        (
            "probe timeout longer than the interval",
            doc(
                "",
                &format!("{ONE}\n[pools.health_check]\ninterval = \"1s\"\ntimeout = \"1500ms\""),
            ),
            vec![
                "pools[0].health_check.timeout: timeout 1500ms is longer than interval 1s; probes of one backend never overlap, so checks run less often",
            ],
        ),
        (
            "hash_key on an algorithm that does not hash",
            doc(
                "",
                &format!("algorithm = \"least_connections\"\nhash_key = \"client_ip\"\n{ONE}"),
            ),
            vec![
                "pools[0].hash_key: hash_key \"client_ip\" has no effect with algorithm \"least_connections\"; only maglev and ring_hash hash",
            ],
        ),
        (
            "wildcard and specific address on one port in two listeners",
            format!(
                "{}\n[[listeners]]\nname = \"all\"\nbind = \"0.0.0.0:6000\"\npool = \"pg\"\n",
                doc("", ONE)
            ),
            vec![
                "listeners[1].bind[0]: address 0.0.0.0:6000 overlaps 127.0.0.1:6000 of listeners[0].bind[0]; connections to 127.0.0.1:6000 go only to the socket bound to it",
            ],
        ),
        (
            "wildcard and specific address in one listener is not an overlap",
            doc("", ONE).replace(
                "bind = \"127.0.0.1:6000\"",
                "bind = [\"127.0.0.1:6000\", \"0.0.0.0:6000\"]",
            ),
            vec![],
        ),
        (
            "IPv6 wildcard and IPv4 address do not overlap (IPV6_V6ONLY)",
            doc("", ONE).replace("bind = \"127.0.0.1:6000\"", "bind = \"[::]:6000\"")
                + "\n[[listeners]]\nname = \"v4\"\nbind = \"127.0.0.1:6000\"\npool = \"pg\"\n",
            vec![],
        ),
        (
            "port 0 twice is no clash",
            format!(
                "[admin]\naddress = \"127.0.0.1:0\"\n{}",
                doc("", ONE).replace("127.0.0.1:6000", "127.0.0.1:0")
            ),
            vec![],
        ),
    ];
    for (name, text, want) in &cases {
        assert_lines(name, text, &warnings(text), want);
    }
}

#[test]
fn defaults_and_values_reach_the_typed_config() {
    use std::time::Duration;
    let v = parse(&doc("", ONE), "t").unwrap();
    let l = &v.config.listeners[0];
    assert_eq!(l.connect_timeout, Duration::from_secs(5));
    assert_eq!(l.idle_timeout, Duration::from_secs(3600));
    assert_eq!(l.keepalive, Some(Duration::from_secs(60)));
    assert_eq!(l.connect_attempts, 3);
    assert_eq!(l.max_connections, 10_000);
    assert_eq!(l.backlog, 1024);
    assert!(l.splice);
    assert_eq!(v.config.admin, Some("127.0.0.1:9090".parse().unwrap()));
    assert_eq!(v.config.runtime.shutdown_grace, Duration::from_secs(30));
    let p = &v.config.pools[0];
    assert_eq!(p.backends[0].name, "127.0.0.1:5432");
    assert_eq!(p.backends[0].weight, 1);
    assert_eq!(p.fail_timeout, Duration::from_secs(10));
    assert!(p.passive);
    assert!(p.health_check.is_none());

    let v = parse(
        &format!(
            "[admin]\nenabled = false\n{}",
            doc("keepalive = \"off\"", ONE)
        ),
        "t",
    )
    .unwrap();
    assert_eq!(v.config.admin, None);
    assert_eq!(v.config.listeners[0].keepalive, None);
}

#[test]
fn http_checks_reach_the_typed_config() {
    use weir_common::health::probe::Probe;
    let probe = |keys: &str| {
        let text = doc(
            "",
            &format!("{ONE}\n[pools.health_check]\ntype = \"http\"\n{keys}"),
        );
        let v = parse(&text, "t").unwrap();
        let summary = v.config.summary();
        (
            v.config.pools[0].health_check.clone().unwrap().probe,
            summary,
        )
    };
    let (defaults, summary) = probe("");
    assert_eq!(
        defaults,
        Probe::Http {
            method: "GET".to_owned(),
            path: "/".to_owned(),
            host: None,
            expect_status: (200, 399),
        }
    );
    assert!(
        summary.contains("http GET / expecting 200-399 every 2s (rise 2, fall 3)"),
        "{summary}"
    );
    let (set, summary) = probe(
        "path = \"/healthz?full=1\"\nmethod = \"head\"\nhost = \"app.example.com:8080\"\nexpect_status = \" 204 \"",
    );
    assert_eq!(
        set,
        Probe::Http {
            method: "HEAD".to_owned(),
            path: "/healthz?full=1".to_owned(),
            host: Some("app.example.com:8080".to_owned()),
            expect_status: (204, 204),
        }
    );
    assert!(
        summary.contains("http HEAD /healthz?full=1 Host app.example.com:8080 expecting 204 every"),
        "{summary}"
    );
    let (range, _) = probe("expect_status = \"100-599\"");
    assert!(matches!(
        range,
        Probe::Http {
            expect_status: (100, 599),
            ..
        }
    ));
}
