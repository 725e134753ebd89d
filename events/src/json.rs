//! The canonical JSON text of event data (a leaf module: `event` and `domain` both use it).

/// The canonical text of a JSON value: compact, object keys sorted (recursively), so every
/// replica stores byte-identical `event_data` for the same content, whatever key order or
/// whitespace the author used (views hash equal, DESIGN.md rule 20).
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{ "title": "x", "bases": [ {"z":1,"a":2} ] }"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"bases":[{"a":2,"z":1}],"title":"x"}"#
        );
        let b: serde_json::Value =
            serde_json::from_str(r#"{"bases":[{"a":2,"z":1}],"title":"x"}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&serde_json::json!("é\n\"")),
            serde_json::json!("é\n\"").to_string()
        );
    }
}
