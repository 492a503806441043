//! The decoders: an answer's bytes to one JSON value that paths read.
//!
//! - JSON as it is;
//! - XML as `{"<root>": …}`: an element with neither attributes nor children is its text;
//!   otherwise an object of its children by local name (a repeated child becomes a list),
//!   its attributes as `@name` and any text beside children as `#text`;
//! - CSV as a list of objects, one per row, keyed by the header row (values as text).
//!
//! No decoder panics on any input: garbage is an error naming the decoder.

use serde_json::{Map, Value};

use super::model::Format;

/// Decodes `body` as `format`.
pub fn decode(format: Format, body: &[u8]) -> Result<Value, String> {
    match format {
        Format::Json => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            serde_json::from_slice(body).map_err(|e| format!("JSON: {e}"))
        }
        Format::Xml => {
            let text = std::str::from_utf8(body).map_err(|e| format!("XML: not UTF-8: {e}"))?;
            xml(text).map_err(|e| format!("XML: {e}"))
        }
        Format::Csv => csv(body).map_err(|e| format!("CSV: {e}")),
    }
}

struct Open {
    name: String,
    children: Map<String, Value>,
    text: String,
}

fn xml(text: &str) -> Result<Value, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<(String, Value)> = None;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                if root.is_some() {
                    return Err("content after the root element".into());
                }
                stack.push(Open {
                    name: e.local_name().into_inner().to_owned(),
                    children: attributes(&e)?,
                    text: String::new(),
                });
            }
            Event::Empty(e) => {
                let name = e.local_name().into_inner().to_owned();
                let attrs = attributes(&e)?;
                let value = if attrs.is_empty() {
                    Value::String(String::new())
                } else {
                    Value::Object(attrs)
                };
                match stack.last_mut() {
                    Some(parent) => insert(&mut parent.children, name, value),
                    None if root.is_none() => root = Some((name, value)),
                    None => return Err("content after the root element".into()),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| format!("unknown entity &{};", &*r))?
                        .to_owned(),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::End(_) => {
                let open = stack.pop().ok_or("an end tag without a start")?;
                let text = open.text.trim();
                let value = if open.children.is_empty() {
                    Value::String(text.to_owned())
                } else {
                    let mut children = open.children;
                    if !text.is_empty() {
                        children.insert("#text".into(), Value::String(text.to_owned()));
                    }
                    Value::Object(children)
                };
                match stack.last_mut() {
                    Some(parent) => insert(&mut parent.children, open.name, value),
                    None => root = Some((open.name, value)),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    let (name, value) = root.ok_or("no root element")?;
    let mut out = Map::new();
    out.insert(name, value);
    Ok(Value::Object(out))
}

fn attributes(e: &quick_xml::events::BytesStart<'_>) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        out.insert(
            format!("@{}", attr.key.local_name().into_inner()),
            Value::String(value.into_owned()),
        );
    }
    Ok(out)
}

fn insert(children: &mut Map<String, Value>, name: String, value: Value) {
    match children.get_mut(&name) {
        Some(Value::Array(list)) => list.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            children.insert(name, value);
        }
    }
}

fn csv(body: &[u8]) -> Result<Value, String> {
    let mut reader = csv::ReaderBuilder::new().from_reader(body);
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let mut rows = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| e.to_string())?;
        let object: Map<String, Value> = headers
            .iter()
            .zip(row.iter())
            .map(|(h, v)| (h.to_owned(), Value::String(v.to_owned())))
            .collect();
        rows.push(Value::Object(object));
    }
    Ok(Value::Array(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_three_decoders() {
        let x = decode(
            Format::Xml,
            br#"<?xml version="1.0"?><Items total="2"><Item id="1"><Name>A &amp; B</Name></Item><Item id="2"><Name><![CDATA[C]]></Name></Item></Items>"#,
        )
        .unwrap();
        assert_eq!(
            x,
            json!({"Items": {"@total": "2", "Item": [
                {"@id": "1", "Name": "A & B"}, {"@id": "2", "Name": "C"}]}})
        );
        let c = decode(Format::Csv, b"id,name\n1,\"a, b\"\n2,c\n").unwrap();
        assert_eq!(
            c,
            json!([{"id": "1", "name": "a, b"}, {"id": "2", "name": "c"}])
        );
        assert_eq!(decode(Format::Json, b" ").unwrap(), Value::Null);
        for garbage in [&b"<a><b></a>"[..], b"<a>", b"", b"\xff\xfe<"] {
            assert!(decode(Format::Xml, garbage).is_err(), "{garbage:?}");
        }
        assert!(decode(Format::Csv, b"a,b\n1,2,3\n").is_err());
        assert!(decode(Format::Json, b"{").is_err());
    }
}
