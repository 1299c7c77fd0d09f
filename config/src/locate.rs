//! Names the field a syntax error points at: the TOML parser knows the byte
//! span of a bad key or value, the user wants `pools[0].backends[1].wieght`.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// The dotted path (with array indices) of the key or value whose span
/// contains `span`, or `None` if the text does not parse as TOML or no key
/// holds it.
pub(crate) fn path_of(text: &str, span: &Range<usize>) -> Option<String> {
    let doc = DeTable::parse(text).ok()?;
    in_table(doc.get_ref(), span, "")
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

fn in_table(table: &DeTable<'_>, span: &Range<usize>, prefix: &str) -> Option<String> {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        if contains(&key.span(), span) {
            return Some(path);
        }
        // Children first: the span of a `[[table]]` need not cover its body.
        if let Some(found) = in_value(value.get_ref(), span, &path) {
            return Some(found);
        }
        if contains(&value.span(), span) {
            return Some(path);
        }
    }
    None
}

fn in_value(value: &DeValue<'_>, span: &Range<usize>, path: &str) -> Option<String> {
    match value {
        DeValue::Table(table) => in_table(table, span, path),
        DeValue::Array(array) => array.iter().enumerate().find_map(|(i, item)| {
            let path = format!("{path}[{i}]");
            in_value(item.get_ref(), span, &path)
                .or_else(|| contains(&item.span(), span).then_some(path))
        }),
        _ => None,
    }
}
