//! Keeps docs/configuration.md and examples/reference.toml in step with the
//! raw configuration types, whose doc comments are the reference: every
//! field of every `Raw*` struct in config/src/raw.rs must have a row in its
//! section of the docs (with the same default) and be set in the reference
//! example, and the docs must not describe keys that no longer exist.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

const RAW: &str = include_str!("../src/raw.rs");
const DOCS: &str = include_str!("../../docs/configuration.md");
const REFERENCE: &str = include_str!("../../examples/reference.toml");

/// One `pub field:` of a `Raw*` struct.
#[derive(Debug)]
struct Field {
    /// `RawPool`
    strukt: String,
    /// The TOML table it belongs to, from the struct's doc comment
    /// (`[[pools]]`), or `None` for the top level.
    table: Option<String>,
    /// The key as written in TOML (after `#[serde(rename = "...")]`).
    key: String,
    /// The doc comment, joined into one line.
    doc: String,
}

impl Field {
    /// The default the doc comment gives in backticks (`Default `"5s"``).
    fn default(&self) -> Option<&str> {
        let rest = &self.doc[self.doc.find("Default `")? + "Default `".len()..];
        Some(&rest[..rest.find('`')?])
    }
}

/// Reads the fields of every `pub struct Raw...` in raw.rs. Simple line
/// parsing: doc comments, `#[serde(rename = "...")]`, `pub name: Type,`.
fn raw_fields() -> Vec<Field> {
    let mut fields = Vec::new();
    let mut doc: Vec<String> = Vec::new();
    let mut rename: Option<String> = None;
    let mut current: Option<(String, Option<String>)> = None;
    for line in RAW.lines() {
        let line = line.trim();
        if let Some(text) = line.strip_prefix("///") {
            doc.push(text.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("#[serde(rename = \"") {
            rename = Some(rest[..rest.find('"').unwrap()].to_owned());
        } else if line.starts_with("#[")
            || line.starts_with(')')
            || line.starts_with("deny_")
            || line.starts_with("expecting")
        {
            // other attributes (rustfmt may split them over lines)
        } else if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.split(|c: char| !c.is_alphanumeric()).next().unwrap();
            current = name.starts_with("Raw").then(|| {
                // The struct's doc comment opens with its table: `[admin]`.
                let table = doc.first().and_then(|first| {
                    let t = first.strip_prefix('`')?.strip_suffix('`')?;
                    t.starts_with('[').then(|| t.to_owned())
                });
                (name.to_owned(), table)
            });
            doc.clear();
        } else if line == "}" {
            current = None;
            doc.clear();
        } else if let (Some((strukt, table)), Some(rest)) = (&current, line.strip_prefix("pub ")) {
            if let Some((name, _)) = rest.split_once(':') {
                fields.push(Field {
                    strukt: strukt.clone(),
                    table: table.clone(),
                    key: rename.take().unwrap_or_else(|| name.trim().to_owned()),
                    doc: doc.join(" "),
                });
            }
            doc.clear();
        } else {
            doc.clear();
        }
    }
    fields
}

/// The lines of the docs section whose heading names `table` (`[admin]`),
/// or the "Top level" section: up to the next heading of any level.
fn docs_section(table: Option<&str>) -> Vec<&'static str> {
    let is_heading = |l: &str| l.starts_with('#');
    let wanted = |l: &str| match table {
        Some(t) => l.contains(&format!("`{t}`")),
        None => l.trim_start_matches('#').trim() == "Top level",
    };
    DOCS.lines()
        .skip_while(|l| !(is_heading(l) && wanted(l)))
        .skip(1)
        .take_while(|l| !is_heading(l))
        .collect()
}

/// The rows of a reference table in `section`: ``| `key` | ...``.
fn rows<'a>(section: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    section
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("| `")?;
            let end = rest.find('`')?;
            Some((&rest[..end], *l))
        })
        .collect()
}

#[test]
fn raw_rs_is_read_correctly() {
    let fields = raw_fields();
    let keys = |s: &str| -> Vec<&str> {
        fields
            .iter()
            .filter(|f| f.strukt == s)
            .map(|f| f.key.as_str())
            .collect()
    };
    assert_eq!(
        keys("RawConfig"),
        [
            "admin",
            "runtime",
            "listeners",
            "pools",
            "jwt_providers",
            "rate_limits",
            "redis"
        ]
    );
    assert_eq!(keys("RawAdmin"), ["address", "enabled"]);
    assert!(
        keys("RawHealthCheck").contains(&"type"),
        "{:?}",
        keys("RawHealthCheck")
    );
    assert!(!keys("RawHealthCheck").contains(&"kind"));
    let structs: std::collections::BTreeSet<&str> =
        fields.iter().map(|f| f.strukt.as_str()).collect();
    assert_eq!(
        structs.into_iter().collect::<Vec<_>>(),
        [
            "RawAdmin",
            "RawBackend",
            "RawCertificate",
            "RawConfig",
            "RawHealthCheck",
            "RawJwtProvider",
            "RawListener",
            "RawOutlierDetection",
            "RawPool",
            "RawRateLimit",
            "RawRedis",
            "RawRoute",
            "RawRuntime",
            "RawUpstreamTls"
        ]
    );
    let table = |s: &str| fields.iter().find(|f| f.strukt == s).unwrap().table.clone();
    assert_eq!(table("RawConfig"), None);
    assert_eq!(table("RawBackend").as_deref(), Some("[[pools.backends]]"));
    let timeout = fields
        .iter()
        .find(|f| f.strukt == "RawListener" && f.key == "connect_timeout")
        .unwrap();
    assert_eq!(timeout.default(), Some("\"5s\""));
}

#[test]
fn every_field_is_documented_in_its_section_with_its_default() {
    let mut missing = Vec::new();
    for f in raw_fields() {
        let where_ = f.table.as_deref().unwrap_or("top level");
        let section = docs_section(f.table.as_deref());
        if section.is_empty() {
            missing.push(format!(
                "docs/configuration.md has no section headed `{where_}`"
            ));
            continue;
        }
        let rows = rows(&section);
        let Some((_, row)) = rows.iter().find(|(k, _)| *k == f.key) else {
            missing.push(format!(
                "{where_} `{}` ({}) has no row in docs/configuration.md",
                f.key, f.strukt
            ));
            continue;
        };
        if let Some(default) = f.default()
            && !row.contains(&format!("`{default}`"))
        {
            missing.push(format!(
                "{where_} `{}`: raw.rs says Default `{default}`, docs/configuration.md says:\n    {row}",
                f.key
            ));
        }
    }
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

#[test]
fn docs_describe_no_key_that_does_not_exist() {
    let fields = raw_fields();
    let mut stale = Vec::new();
    let mut tables: Vec<Option<String>> = fields.iter().map(|f| f.table.clone()).collect();
    tables.dedup();
    for table in tables {
        for (key, _) in rows(&docs_section(table.as_deref())) {
            if !fields.iter().any(|f| f.table == table && f.key == key) {
                stale.push(format!(
                    "{}: `{key}`",
                    table.as_deref().unwrap_or("top level")
                ));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "docs/configuration.md documents unknown keys:\n{}",
        stale.join("\n")
    );
}

/// `key` is set (not just mentioned in a comment) somewhere in the reference
/// example: `key = ...`, `{ key = ...`, `, key = ...` or a table header whose
/// last segment is `key`.
fn set_in_reference(key: &str) -> bool {
    REFERENCE
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .any(|l| {
            let header = l
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .rsplit('.')
                .next()
                .unwrap_or_default();
            (l.starts_with('[') && header == key)
                || l.starts_with(&format!("{key} ="))
                || l.contains(&format!("{{ {key} ="))
                || l.contains(&format!(", {key} ="))
        })
}

#[test]
fn every_field_is_set_in_the_reference_example() {
    let missing: Vec<String> = raw_fields()
        .into_iter()
        .filter(|f| !set_in_reference(&f.key))
        .map(|f| format!("{} `{}`", f.table.as_deref().unwrap_or("top level"), f.key))
        .collect();
    assert!(
        missing.is_empty(),
        "examples/reference.toml never sets:\n{}",
        missing.join("\n")
    );
}

/// The first fenced block of `lang` after the heading `heading`.
fn block_after(heading: &str, lang: &str) -> String {
    DOCS.lines()
        .skip_while(|l| l.trim_start_matches('#').trim() != heading)
        .skip_while(|l| *l != format!("```{lang}"))
        .skip(1)
        .take_while(|l| *l != "```")
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn the_docs_error_example_prints_what_the_docs_say() {
    let toml = block_after("How errors are reported", "toml");
    let output = block_after("How errors are reported", "text");
    assert!(!toml.is_empty() && !output.is_empty());
    let want: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("weir.toml: error: "))
        .collect();
    let got = weir_config::parse(&toml, "weir.toml").unwrap_err().lines();
    assert_eq!(got, want);
    let count = format!("weir.toml: {} error(s); nothing started", want.len());
    assert!(output.contains(&count), "{output}");
}

#[test]
fn the_docs_example_is_valid() {
    let toml = block_after("Example", "toml");
    let v = weir_config::parse(&toml, "docs example").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
}
