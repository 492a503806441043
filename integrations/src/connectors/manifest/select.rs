//! Record selection and field mapping over decoded answers: paths like `data.items[0].id`
//! (dots between keys, `[n]` for an array's element), [`get`] to read one, [`records`] to
//! take a page's records (an object is one record, an array its elements), [`keep`] for a
//! stream's `select`, and [`map`] to build a record from `output field → source path`
//! pairs (dotted output fields make nested objects).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::model::Select;

/// The value at `path` in `value` (`""`: the value itself).
pub fn get<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (key, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = current.as_object()?.get(key)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let n: usize = index.trim_end_matches(']').parse().ok()?;
            current = current.as_array()?.get(n)?;
        }
    }
    Some(current)
}

/// The value at `path` as text (a string as it is, a number or boolean written out).
pub fn text(value: &Value, path: &str) -> Option<String> {
    match get(value, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The records of a decoded answer: those at `records_path` (the whole answer when
/// absent); an array's elements, an object as one record, nothing for null or absent.
pub fn records(answer: &Value, records_path: Option<&str>) -> Result<Vec<Value>, String> {
    let at = match records_path {
        Some(path) => match get(answer, path) {
            Some(v) => v,
            None => return Ok(Vec::new()),
        },
        None => answer,
    };
    match at {
        Value::Array(items) => Ok(items.clone()),
        Value::Object(_) => Ok(vec![at.clone()]),
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        other => Err(format!(
            "records at `{}` are a {}, not a list",
            records_path.unwrap_or(""),
            kind(other)
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// Whether `record` is kept by `select`.
pub fn keep(record: &Value, select: Option<&Select>) -> bool {
    select.is_none_or(|s| text(record, &s.path).is_some_and(|v| s.any_of.contains(&v)))
}

/// The record made of `fields` (output field → source path) read from `source`; `source`
/// itself when `fields` is empty. A source path that is absent leaves its field out.
pub fn map(source: &Value, fields: &BTreeMap<String, String>) -> Value {
    if fields.is_empty() {
        return source.clone();
    }
    let mut out = Map::new();
    for (target, from) in fields {
        if let Some(value) = get(source, from) {
            put(&mut out, target, value.clone());
        }
    }
    Value::Object(out)
}

fn put(out: &mut Map<String, Value>, target: &str, value: Value) {
    match target.split_once('.') {
        None => {
            out.insert(target.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = out
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(inner) = entry {
                put(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_select_and_map() {
        let v = json!({"data": {"items": [{"id": 7, "due": {"at": "x"}, "kind": "due"}]}});
        assert_eq!(get(&v, "data.items[0].id"), Some(&json!(7)));
        assert_eq!(text(&v, "data.items[0].id").as_deref(), Some("7"));
        assert_eq!(get(&v, "data.items[3]"), None);
        let recs = records(&v, Some("data.items")).unwrap();
        assert_eq!(recs.len(), 1);
        assert!(records(&json!({"a": 1}), Some("a")).is_err());
        let sel = Select {
            path: "kind".into(),
            any_of: vec!["due".into()],
        };
        assert!(keep(&recs[0], Some(&sel)));
        let fields = BTreeMap::from([
            ("item.id".to_owned(), "id".to_owned()),
            ("due_at".to_owned(), "due.at".to_owned()),
            ("gone".to_owned(), "nope".to_owned()),
        ]);
        assert_eq!(
            map(&recs[0], &fields),
            json!({"item": {"id": 7}, "due_at": "x"})
        );
    }
}
