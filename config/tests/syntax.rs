//! Syntax errors (malformed TOML, unknown keys, wrong types) come with the
//! file, line, column and, where it can be placed, the field path.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use support::{ONE, assert_lines, doc};
use weir_config::{LoadError, parse};

/// The one syntax error line of a config that must not parse.
fn syntax(text: &str) -> String {
    match parse(text, "test.toml") {
        Err(LoadError::Syntax(line)) => line,
        Err(e) => panic!("expected a syntax error, got {e}\n{text}"),
        Ok(_) => panic!("expected a syntax error, got a valid config\n{text}"),
    }
}

#[test]
fn syntax_errors_have_line_and_column() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "a value that is not quoted",
            "[admin]\naddress = 127.0.0.1:9090\n".into(),
            "test.toml:2:…",
        ),
        (
            "an unterminated string",
            "[admin]\nenabled = true\naddress = \"127.0.0.1:9090\n".into(),
            "test.toml:3:26: invalid basic string, expected `\"`",
        ),
        (
            "junk after a value",
            "[admin]\n  address = \"x\" junk\n".into(),
            "test.toml:2:17: …",
        ),
        (
            "an unclosed table header",
            "[[listeners]]\nname = \"db\"\n[[pools\n".into(),
            "test.toml:3:…",
        ),
        (
            "a key given twice",
            "[admin]\nenabled = true\nenabled = false\n".into(),
            "test.toml:3:1: duplicate key \"enabled\"",
        ),
        (
            "an unknown key in a listener",
            doc("colour = \"red\"", ONE),
            "test.toml:5:1: listeners[0].colour: unknown field `colour`, expected one of `name`, `bind`, …",
        ),
        (
            "an unknown key in an inline backend",
            doc(
                "",
                "backends = [{ address = \"127.0.0.1:5432\", wieght = 2 }]",
            ),
            "test.toml:9:43: pools[0].backends[0].wieght: unknown field `wieght`, expected one of `name`, `address`, `weight`",
        ),
        (
            "an unknown key at the top",
            format!("colour = 1\n{}", doc("", ONE)),
            "test.toml:1:1: colour: unknown field `colour`, expected one of `admin`, `runtime`, `listeners`, `pools`, `jwt_providers`, `rate_limits`, `redis`",
        ),
        (
            "an unknown key in the health check",
            doc(
                "",
                &format!("{ONE}\n[pools.health_check]\ninterval = \"1s\"\n  expected = \"+PONG\""),
            ),
            "test.toml:12:3: pools[0].health_check.expected: unknown field `expected`, expected one of …",
        ),
        (
            "a number where a duration goes",
            doc("connect_timeout = 5", ONE),
            "test.toml:5:19: listeners[0].connect_timeout: invalid type: integer `5`, expected a string",
        ),
        (
            "a number where addresses go",
            doc("", ONE).replace("\"127.0.0.1:6000\"", "6000"),
            "test.toml:3:8: listeners[0].bind: invalid type: integer `6000`, expected an address string like \"0.0.0.0:5432\" or a list of them",
        ),
        (
            "a number where rate-limit key parts go",
            format!(
                "{}\n[[rate_limits]]\nname = \"r\"\nrate = \"1/s\"\nkey = 7\n",
                doc("", ONE)
            ),
            "test.toml:14:7: rate_limits[0].key: invalid type: integer `7`, expected a key like \"client_ip\" or a list of them",
        ),
        (
            "a negative weight",
            doc(
                "",
                "backends = [{ address = \"127.0.0.1:5432\", weight = -1 }]",
            ),
            "test.toml:9:52: pools[0].backends[0].weight: invalid value: integer `-1`, expected u32",
        ),
        (
            "a missing required key",
            "[[listeners]]\nname = \"db\"\npool = \"pg\"\n".into(),
            "test.toml:1:1: listeners[0]: missing field `bind`",
        ),
        (
            "columns count characters, not bytes",
            "[[pools]]\nname = \"é\" # ünïcödé\n\"ñ\" = 1\nbackends = []\n".into(),
            "test.toml:3:1: pools[0].ñ: unknown field `ñ`, …",
        ),
        (
            "a column after multi-byte text on the same line",
            "[admin]\naddress = \"é\" x\n".into(),
            "test.toml:2:15: …",
        ),
        (
            "CRLF line endings",
            "[admin]\r\nenabled = true\r\ncolour = 1\r\n".into(),
            "test.toml:3:1: admin.colour: unknown field `colour`, expected `address` or `enabled`",
        ),
        (
            "a byte-order mark is not a column",
            "\u{feff}colour = 1\n".into(),
            "test.toml:1:1: colour: …",
        ),
    ];
    for (name, text, want) in &cases {
        let got = syntax(text);
        assert_lines(name, text, &[got], &[want]);
    }
}

#[test]
fn load_reports_a_missing_file_and_parses_a_real_one() {
    let missing = std::path::Path::new("/nonexistent/weir.toml");
    let err = weir_config::load(missing).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read /nonexistent/weir.toml: "),
        "{err}"
    );

    let dir = std::env::temp_dir().join(format!("weir-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("weir.toml");
    std::fs::write(&path, doc("colour = 1", ONE)).unwrap();
    let err = weir_config::load(&path).unwrap_err();
    let want = format!("{}:5:1: listeners[0].colour: ", path.display());
    assert!(err.to_string().starts_with(&want), "{err}");
    std::fs::write(&path, doc("", ONE)).unwrap();
    assert!(weir_config::load(&path).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}
