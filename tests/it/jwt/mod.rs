//! JWT authentication end to end: weir in-process with real sockets, keys
//! and tokens made by the test, a fake backend that counts what reaches it,
//! and a fake identity provider serving a JWKS.

mod attacks;
mod idp;
mod jwks;
pub mod keys;

use serde_json::json;

use crate::support::fake_http::{FakeHttp, Reply, req_with, send};
use crate::support::peers::TempDir;
use crate::support::{Weir, unique};
use keys::{ALL, TestKey, claims};

/// A `[[jwt_providers]]` table.
pub fn provider(name: &str, issuer: &str, algs: &[&str], rest: &str) -> String {
    let algs: Vec<String> = algs.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "\n[[jwt_providers]]\nname = \"{name}\"\nissuer = \"{issuer}\"\naudiences = [\"api\"]\n\
         algorithms = [{}]\n{rest}\n",
        algs.join(", ")
    )
}

/// A route table on `prefix` to `{pool}`, with `auth` (a TOML value, or "").
pub fn route(prefix: &str, auth: &str) -> String {
    let auth = if auth.is_empty() {
        String::new()
    } else {
        format!("auth = {auth}\n")
    };
    format!("\n[[listeners.routes]]\npath_prefix = \"{prefix}\"\npool = \"{{pool}}\"\n{auth}")
}

/// weir with `routes` on an HTTP listener (no default pool) and `providers`.
pub async fn start(routes: &str, providers: &str, backend: &FakeHttp) -> Weir {
    let text = format!(
        "{}\n{providers}",
        Weir::http_routes("round_robin", routes, "")
    );
    Weir::start(&text, &[backend.addr]).await
}

/// GET `path` with `Authorization: Bearer token` (none when empty) and
/// `extra` headers.
pub async fn get_with(weir: &Weir, path: &str, token: &str, extra: &[(&str, &str)]) -> Reply {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("host", "test.local")];
    if !token.is_empty() {
        headers.push(("authorization", bearer.as_str()));
    }
    headers.extend_from_slice(extra);
    send(weir.addr, req_with("GET", path, &headers, "")).await
}

/// `weir_jwt_decisions_total{provider, reason}`.
pub async fn decisions(weir: &Weir, provider: &str, reason: &str) -> f64 {
    weir.metric(
        "weir_jwt_decisions_total",
        &[("provider", provider), ("reason", reason)],
    )
    .await
}

pub fn write(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_passes_and_forwards_claims() {
    let backend = FakeHttp::start("b0").await;
    let dir = TempDir::new("jwt-algs");
    let secret = write(&dir, "secret", std::str::from_utf8(keys::SECRET).unwrap());
    let keys: Vec<TestKey> = ALL.iter().map(|alg| TestKey::new(alg, alg)).collect();
    let public: Vec<&TestKey> = keys.iter().filter(|k| !k.alg.starts_with("HS")).collect();
    let jwks_file = write(&dir, "jwks.json", &keys::jwks(&public));
    // PEM keys (no kid) for one algorithm of each family.
    let pem_keys: Vec<TestKey> = ["RS256", "ES384", "EdDSA"]
        .iter()
        .map(|alg| TestKey::new(alg, ""))
        .collect();
    let pem_files: Vec<String> = pem_keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{:?}", write(&dir, &format!("k{i}.pem"), &k.pem())))
        .collect();
    let (hs, pk, pem) = (unique("hs"), unique("pk"), unique("pem"));
    let headers = "claims_to_headers = { sub = \"X-User-Id\", scope = \"X-Scopes\" }";
    let providers = [
        provider(
            &hs,
            "iss-hs",
            &["HS256", "HS384", "HS512"],
            &format!("hmac_secret_file = {secret:?}\n{headers}"),
        ),
        provider(
            &pk,
            "iss-pk",
            &ALL[3..],
            &format!("jwks_file = {jwks_file:?}\n{headers}"),
        ),
        provider(
            &pem,
            "iss-pem",
            &["RS256", "ES384", "EdDSA"],
            &format!("public_key_files = [{}]\n{headers}", pem_files.join(", ")),
        ),
    ]
    .concat();
    let routes = [
        route("/hs", &format!("{hs:?}")),
        route("/pk", &format!("{pk:?}")),
        route("/pem", &format!("{pem:?}")),
        route("/open", ""),
    ]
    .concat();
    let weir = start(&routes, &providers, &backend).await;

    let mut admitted = 0;
    for k in keys.iter().chain(&pem_keys) {
        let (path, iss) = match (k.alg, k.kid.is_empty()) {
            (a, false) if a.starts_with("HS") => ("/hs", "iss-hs"),
            (_, false) => ("/pk", "iss-pk"),
            (_, true) => ("/pem", "iss-pem"),
        };
        let sub = format!("user-{}", k.alg);
        let token = k.sign(&claims(iss, &sub));
        // The client tries to forge the identity header: it is replaced.
        let r = get_with(&weir, path, &token, &[("x-user-id", "admin")]).await;
        assert_eq!(r.status, 200, "{} via {path}: {}", k.alg, r.text());
        admitted += 1;
        let echo = r.echo();
        assert_eq!(echo.header_all("x-user-id"), vec![sub], "{}", k.alg);
        assert_eq!(echo.header("x-scopes").as_deref(), Some("read write"));
        assert_eq!(
            echo.header("authorization"),
            None,
            "token stripped by default"
        );
    }
    assert_eq!(backend.requests(), admitted);

    // An open route is open; a forged header there is not our business.
    assert_eq!(get_with(&weir, "/open", "", &[]).await.status, 200);
    for (p, n) in [(&hs, 3.0), (&pk, 9.0), (&pem, 3.0)] {
        assert_eq!(decisions(&weir, p, "ok").await, n, "{p}");
    }
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_sources_forwarding_and_scopes() {
    let backend = FakeHttp::start("b0").await;
    let dir = TempDir::new("jwt-src");
    let secret = write(&dir, "secret", std::str::from_utf8(keys::SECRET).unwrap());
    let key = TestKey::new("HS256", "");
    let s = format!("hmac_secret_file = {secret:?}");
    let (c, q, h, admin) = (
        unique("cookie"),
        unique("query"),
        unique("hdr"),
        unique("adm"),
    );
    let providers = [
        provider(
            &c,
            "iss",
            &["HS256"],
            &format!("{s}\ncookie = \"session\"\nforward_token = true"),
        ),
        provider(
            &q,
            "iss",
            &["HS256"],
            &format!("{s}\nquery = \"access_token\""),
        ),
        provider(&h, "iss", &["HS256"], &format!("{s}\nheader = \"x-token\"")),
        provider(
            &admin,
            "iss",
            &["HS256"],
            &format!("{s}\nrequired_scopes = [\"admin\"]\nrealm = \"admin-api\""),
        ),
    ]
    .concat();
    let routes = [
        route("/c", &format!("{c:?}")),
        route("/q", &format!("{q:?}")),
        route("/h", &format!("{h:?}")),
        route("/admin", &format!("{admin:?}")),
        route("/any", &format!("[{c:?}, {h:?}]")),
    ]
    .concat();
    let weir = start(&routes, &providers, &backend).await;
    let token = key.sign(&claims("iss", "u1"));

    // Cookie, forwarded as it came.
    let cookie = format!("a=1; session={token}");
    let r = get_with(&weir, "/c", "", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echo().header("cookie"), Some(cookie.clone()));
    // Query parameter, removed before forwarding.
    let r = get_with(
        &weir,
        &format!("/q/x?a=1&access_token={token}&b=2"),
        "",
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echo().path(), "/q/x?a=1&b=2");
    // Named header, removed.
    let r = get_with(&weir, "/h", "", &[("x-token", &token)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echo().header("x-token"), None);
    // A token in the wrong place is a missing token.
    let r = get_with(&weir, "/h", &token, &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"weir\""));
    // Either of two providers may admit.
    let r = get_with(&weir, "/any", "", &[("x-token", &token)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Valid, but without the scope: 403.
    let before = backend.requests();
    let r = get_with(&weir, "/admin", &token, &[]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            "Bearer realm=\"admin-api\", error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"admin\""
        )
    );
    assert_eq!(r.json()["error"], json!("forbidden"));
    let scoped = key.sign(
        &json!({ "iss": "iss", "aud": ["x", "api"], "exp": keys::now() + 60, "scp": ["admin"] }),
    );
    assert_eq!(get_with(&weir, "/admin", &scoped, &[]).await.status, 200);
    assert_eq!(backend.requests(), before + 1);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_are_authenticated_the_same_way() {
    let backend = FakeHttp::start("b0").await;
    let dir = TempDir::new("jwt-h2");
    let secret = write(&dir, "secret", std::str::from_utf8(keys::SECRET).unwrap());
    let name = unique("h2");
    let providers = provider(
        &name,
        "iss",
        &["HS384"],
        &format!("hmac_secret_file = {secret:?}\nclaims_to_headers = {{ sub = \"X-User-Id\" }}"),
    );
    let weir = start(&route("/api", &format!("{name:?}")), &providers, &backend).await;
    let h2 = crate::support::fake_http::H2::connect(weir.addr).await;
    let ask = |auth: Option<String>| {
        let mut headers = vec![];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        h2.try_send(req_with("GET", "http://test.local/api/x", &headers, ""))
    };
    let r = ask(None).await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"weir\""));
    let token = TestKey::new("HS384", "").sign(&claims("iss", "h2-user"));
    let r = ask(Some(format!("Bearer {token}"))).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echo().header("x-user-id").as_deref(), Some("h2-user"));
    assert_eq!(backend.requests(), 1);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_key_on_a_verified_claim() {
    let backend = FakeHttp::start("b0").await;
    let dir = TempDir::new("jwt-rate");
    let secret = write(&dir, "secret", std::str::from_utf8(keys::SECRET).unwrap());
    let (idp, per_user) = (unique("idp"), unique("per-user"));
    let top = format!(
        "{}\n[[rate_limits]]\nname = \"{per_user}\"\nrate = \"1/m\"\nburst = 2\nkey = \"claim:sub\"\n",
        provider(
            &idp,
            "iss",
            &["HS256"],
            &format!("hmac_secret_file = {secret:?}")
        )
    );
    let routes = format!(
        "{}rate_limits = [\"{per_user}\"]\n",
        route("/api", &format!("{idp:?}"))
    );
    let weir = start(&routes, &top, &backend).await;
    let key = TestKey::new("HS256", "");
    let alice = key.sign(&claims("iss", "alice"));
    let bob = key.sign(&claims("iss", "bob"));
    // Both users come from the same IP: only the claim tells them apart.
    for _ in 0..2 {
        assert_eq!(get_with(&weir, "/api/x", &alice, &[]).await.status, 200);
    }
    assert_eq!(get_with(&weir, "/api/x", &alice, &[]).await.status, 429);
    assert_eq!(
        get_with(&weir, "/api/x", &bob, &[]).await.status,
        200,
        "another subject has its own bucket"
    );
    // A token issued to alice again is still alice.
    let alice_again = key.sign(&claims("iss", "alice"));
    assert_eq!(
        get_with(&weir, "/api/x", &alice_again, &[]).await.status,
        429
    );
    assert_eq!(backend.requests(), 3);
    weir.stop().await;
}
