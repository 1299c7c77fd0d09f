//! The validated rate limits: request policies (`[[rate_limits]]`), the
//! Redis server global ones share (`[redis]`), and the per-client connection
//! limits of TCP listeners.

use std::time::Duration;

/// A validated `[[rate_limits]]` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// Unique name (metric label, header policy name).
    pub name: String,
    /// Requests per `period`.
    pub count: u64,
    /// The rate's period (1 s, 1 min or 1 h).
    pub period: Duration,
    /// Requests at once from an idle key.
    pub burst: u64,
    /// What the requests are counted by (one part or a combination).
    pub key: Vec<KeyPart>,
    /// Where the counts live.
    pub scope: Scope,
    /// What a failed Redis check does.
    pub on_error: OnError,
    /// Bound on one Redis check.
    pub timeout: Duration,
    /// Count would-be rejections without rejecting.
    pub dry_run: bool,
    /// Send `RateLimit` headers on allowed responses.
    pub headers: bool,
}

/// One part of a rate-limit key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// The client's IP address.
    ClientIp,
    /// A request header's value (lowercase name).
    Header(String),
    /// A verified JWT claim.
    Claim(String),
    /// The matched route.
    Route,
}

/// Where a policy keeps its counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// In this process's memory.
    Local,
    /// In Redis, shared by every instance.
    Global,
}

/// What a failed or slow Redis check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Allow the request.
    FailOpen,
    /// Answer 503.
    FailClosed,
}

/// A password that never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The validated `[redis]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Host name or IP.
    pub host: String,
    /// Port.
    pub port: u16,
    /// ACL user.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// Prefix of every key.
    pub key_prefix: String,
    /// Bound on (re)connecting.
    pub connect_timeout: Duration,
}

/// Per-client connection limits of a TCP listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientLimitOptions {
    /// Connections open at once per source IP.
    pub max_connections: Option<u32>,
    /// New connections per source IP: count per period, burst.
    pub rate: Option<(u64, Duration, u64)>,
}

impl ClientLimitOptions {
    /// True when neither limit is set.
    pub fn is_empty(&self) -> bool {
        self.max_connections.is_none() && self.rate.is_none()
    }

    /// The `weir check` line, when a limit is set.
    pub fn summary(&self) -> Option<String> {
        let max = self.max_connections.map(|n| format!("max {n} conns"));
        let rate = self
            .rate
            .map(|(count, period, burst)| format!("{} burst {burst}", format_rate(count, period)));
        match (max, rate) {
            (None, None) => None,
            (Some(m), None) => Some(format!("per client: {m}")),
            (None, Some(r)) => Some(format!("per client: new connections {r}")),
            (Some(m), Some(r)) => Some(format!("per client: {m}, new connections {r}")),
        }
    }
}

/// Parses a rate: `<count>/s`, `<count>/m` or `<count>/h`, count 1 to 10⁹.
pub fn parse_rate(text: &str) -> Result<(u64, Duration), String> {
    let bad = || {
        format!(
            "invalid rate {text:?}; expected <count>/<unit> with unit s, m or h, like \"100/s\" or \"600/m\""
        )
    };
    let (count, unit) = text.split_once('/').ok_or_else(bad)?;
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let count: u64 = count.parse().map_err(|_| bad())?;
    if !(1..=1_000_000_000).contains(&count) {
        return Err(format!(
            "rate {text:?}: count {count} is out of range; expected 1 to 1000000000"
        ));
    }
    let period = match unit {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    Ok((count, period))
}

/// Formats a rate back (`100/s`).
pub fn format_rate(count: u64, period: Duration) -> String {
    let unit = match period.as_secs() {
        60 => "m",
        3600 => "h",
        _ => "s",
    };
    format!("{count}/{unit}")
}

/// The `weir check` summary lines of the policies and Redis.
pub(crate) fn summary(out: &mut String, policies: &[RateLimitPolicy], redis: Option<&RedisConfig>) {
    use std::fmt::Write as _;
    for p in policies {
        let key: Vec<String> = p
            .key
            .iter()
            .map(|k| match k {
                KeyPart::ClientIp => "client_ip".to_owned(),
                KeyPart::Header(h) => format!("header:{h}"),
                KeyPart::Claim(c) => format!("claim:{c}"),
                KeyPart::Route => "route".to_owned(),
            })
            .collect();
        let scope = match (p.scope, p.on_error) {
            (Scope::Local, _) => "local".to_owned(),
            (Scope::Global, OnError::FailOpen) => "global, fail open".to_owned(),
            (Scope::Global, OnError::FailClosed) => "global, fail closed".to_owned(),
        };
        let _ = writeln!(
            out,
            "ratelimit {} {} burst {} by {} ({scope}{})",
            p.name,
            format_rate(p.count, p.period),
            p.burst,
            key.join("+"),
            if p.dry_run { ", dry run" } else { "" },
        );
    }
    if let Some(r) = redis {
        let _ = writeln!(
            out,
            "redis     {}:{} prefix {:?}{}",
            r.host,
            r.port,
            r.key_prefix,
            if r.password.is_some() {
                ", password set"
            } else {
                ""
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_strictly() {
        assert_eq!(parse_rate("100/s"), Ok((100, Duration::from_secs(1))));
        assert_eq!(parse_rate("600/m"), Ok((600, Duration::from_secs(60))));
        assert_eq!(parse_rate("1000/h"), Ok((1000, Duration::from_secs(3600))));
        for bad in [
            "",
            "100",
            "/s",
            "100/",
            "100/x",
            "0/s",
            "-1/s",
            "+1/s",
            "1.5/s",
            " 1/s",
            "1/s ",
            "1/ s",
            "1/sec",
            "1/S",
            "99999999999999999999/s",
            "1000000001/s",
            "1//s",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(format_rate(5, Duration::from_secs(60)), "5/m");
    }
}
