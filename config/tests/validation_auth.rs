//! Table-driven validation tests for `[[jwt_providers]]` and routes' `auth`:
//! config text → the exact errors `weir check` prints, each at its field
//! path, never with a secret in it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use support::{ONE, assert_lines};
use weir_config::auth::{JwtAlgorithm, SecretSource, TokenSource};
use weir_config::{LoadError, parse_in};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

fn parse(text: &str) -> Result<weir_config::Validated, LoadError> {
    parse_in(text, "test.toml", std::path::Path::new(DIR))
}

/// An HTTP listener with one route `/api` (with `route_keys`) and the
/// provider tables in `providers`.
fn doc(route_keys: &str, providers: &str) -> String {
    format!(
        "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\nprotocol = \"http\"\n\n\
         [[listeners.routes]]\npath_prefix = \"/api\"\npool = \"web\"\n{route_keys}\n\n\
         [[pools]]\nname = \"web\"\n{ONE}\n\n{providers}"
    )
}

/// A valid provider `name` (HS256 with the example secret) plus `keys`.
fn provider(name: &str, keys: &str) -> String {
    format!(
        "[[jwt_providers]]\nname = \"{name}\"\nissuer = \"i\"\nalgorithms = [\"HS256\"]\n\
         hmac_secret_file = \"jwt/hs256.secret\"\n{keys}\n"
    )
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(v) => panic!("expected errors, got a valid config {:?}\n{text}", v.config),
        Err(e @ LoadError::Invalid(_)) => e.lines(),
        Err(e) => panic!("expected validation errors, got {e}\n{text}"),
    }
}

#[test]
fn provider_and_route_errors_table() {
    let p0 = "jwt_providers[0]";
    let bare = |keys: &str| format!("[[jwt_providers]]\nname = \"a\"\n{keys}\n");
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "no issuer, no algorithms, no keys",
            doc("auth = \"a\"", &bare("")),
            vec![
                format!("{p0}.issuer: is required: the `iss` a token must carry"),
                format!("{p0}.algorithms: is required: list the algorithms tokens may use, e.g. [\"RS256\"]"),
                format!("{p0}: a provider needs keys: hmac_secret_file, hmac_secret_env, public_key_files, jwks_file or jwks_url"),
            ],
        ),
        (
            "alg none and an unknown algorithm",
            doc(
                "auth = \"a\"",
                &bare("issuer = \"i\"\nalgorithms = [\"RS256\", \"none\", \"XS1\", \"RS256\"]\njwks_url = \"http://127.0.0.1:1/k\""),
            ),
            vec![
                format!("{p0}.algorithms[1]: \"none\" is never accepted: tokens must be signed"),
                format!("{p0}.algorithms[2]: unknown algorithm \"XS1\"; expected one of: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"),
                format!("{p0}.algorithms[3]: \"RS256\" is listed twice"),
            ],
        ),
        (
            "unknown provider names on a route",
            doc("auth = [\"a\", \"nope\", \"a\"]", &provider("a", "")),
            vec![
                "listeners[0].routes[0].auth[1]: no jwt provider named \"nope\"".into(),
                "listeners[0].routes[0].auth[2]: \"a\" is listed twice".into(),
            ],
        ),
        (
            "empty auth list",
            doc("auth = []", &provider("a", "")),
            vec!["listeners[0].routes[0].auth: must name at least one provider; leave it out for an open route".into()],
        ),
        (
            "two sources, two secrets, bad url, missing file, cooldown without url",
            doc(
                "auth = \"a\"",
                &bare("issuer = \"i\"\nalgorithms = [\"HS256\"]\nheader = \"x-t\"\ncookie = \"c\"\n\
                       hmac_secret_file = \"jwt/hs256.secret\"\nhmac_secret_env = \"S\"\n\
                       public_key_files = [\"jwt/missing.pem\"]\njwks_cooldown = \"5s\""),
            ),
            vec![
                format!("{p0}.cookie: set at most one of header, cookie and query"),
                format!("{p0}.hmac_secret_env: set hmac_secret_file or hmac_secret_env, not both"),
                format!("{p0}.public_key_files[0]: cannot read {DIR}/jwt/missing.pem: …"),
                format!("{p0}.jwks_cooldown: only applies with jwks_url"),
                format!("{p0}.algorithms: HS* algorithms need hmac_secret_file or hmac_secret_env"),
                format!("{p0}.algorithms: public keys are configured but only HS* algorithms are allowed"),
            ],
        ),
        (
            "https url, bad header names, zero refresh, token limit, realm, duplicate name",
            doc(
                "auth = \"a\"",
                &format!(
                    "{}{}",
                    bare("issuer = \"i\"\nalgorithms = [\"ES256\"]\njwks_url = \"ftp://idp/k\"\njwks_ca_file = \"/nonexistent/ca.pem\"\njwks_refresh = \"0s\"\n\
                          claims_to_headers = { sub = \"bad header\", iss = \"Host\" }\nmax_token_bytes = 10\nrealm = \"a\\\"b\"\nleeway = \"soon\""),
                    provider("a", "")
                ),
            ),
            vec![
                format!("{p0}.jwks_refresh: duration \"0s\" must be greater than zero"),
                format!("{p0}.jwks_url: invalid URL \"ftp://idp/k\"; expected https://host[:port]/path or http://…"),
                format!("{p0}.jwks_ca_file: only applies to an https jwks_url"),
                format!("{p0}.claims_to_headers: invalid header name \"bad header\""),
                format!("{p0}.claims_to_headers: header \"Host\" is set by weir or the client's request framing; pick another name"),
                format!("{p0}.realm: must be printable ASCII without quotes or backslashes"),
                format!("{p0}.leeway: invalid duration \"soon\"; expected e.g. \"5s\", \"250ms\", \"1m30s\""),
                format!("{p0}.max_token_bytes: 10 is out of range; expected 128 to 65536"),
                "jwt_providers[1].name: duplicate provider name \"a\"".into(),
            ],
        ),
    ];
    for (name, text, want) in &cases {
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        let got = errors(text);
        let sorted = |v: &[&str]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            v.into_iter().map(str::to_owned).collect::<Vec<_>>()
        };
        let got_refs: Vec<&str> = got.iter().map(String::as_str).collect();
        let want_sorted = sorted(&want);
        let want_refs: Vec<&str> = want_sorted.iter().map(String::as_str).collect();
        assert_lines(name, text, &sorted(&got_refs), &want_refs);
    }
}

#[test]
fn a_valid_provider_is_resolved_and_secrets_stay_out_of_messages() {
    let text = doc(
        "auth = [\"b\", \"a\"]",
        &format!(
            "{}{}",
            provider(
                "a",
                "cookie = \"session\"\nclaims_to_headers = { sub = \"X-User\" }"
            ),
            "[[jwt_providers]]\nname = \"b\"\nissuer = \"i\"\nalgorithms = [\"RS256\", \"EdDSA\"]\n\
             public_key_files = [\"jwt/idp-rs256.pem\"]\njwks_file = \"jwt/jwks.json\"\nquery = \"t\"\n"
        ),
    );
    let v = parse(&text).unwrap();
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    let c = &v.config;
    assert_eq!(
        c.listeners[0].http.as_ref().unwrap().routes[0].auth,
        vec![1, 0]
    );
    let a = &c.jwt_providers[0];
    assert_eq!(a.algorithms, vec![JwtAlgorithm::Hs256]);
    assert_eq!(a.source, TokenSource::Cookie("session".into()));
    assert_eq!(a.claims_to_headers, vec![("sub".into(), "x-user".into())]);
    assert_eq!(a.leeway, std::time::Duration::from_secs(60));
    assert_eq!(a.max_token_bytes, 8192);
    assert!(!a.forward_token);
    assert!(matches!(a.keys.hmac_secret, Some(SecretSource::File(_))));
    assert_eq!(c.jwt_providers[1].source, TokenSource::Query("t".into()));
    let secret = std::fs::read_to_string(format!("{DIR}/jwt/hs256.secret")).unwrap();
    let shown = format!("{}{:?}", c.summary(), c);
    assert!(
        !shown.contains(secret.trim()),
        "the secret leaked:\n{shown}"
    );

    // A provider no route uses is worth a warning.
    let unused = doc("", &provider("a", ""));
    let v = parse(&unused).unwrap();
    let w: Vec<String> = v.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        ["jwt_providers[0]: jwt provider \"a\" is not used by any route"]
    );
}
