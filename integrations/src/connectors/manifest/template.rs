//! The `{{…}}` references a manifest's values may hold: `{{secret.NAME}}` (a field of the
//! integration's credentials), `{{setting.NAME}}` (a field of its settings),
//! `{{record.PATH}}` (out: the event data's field) and `{{external_id}}` (out: the
//! provider's id of a record pushed before). Anything else is refused at load.

/// One reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ref<'a> {
    /// A credential field.
    Secret(&'a str),
    /// A settings field.
    Setting(&'a str),
    /// A path in the outbound record's data.
    Record(&'a str),
    /// The provider's id of the record.
    ExternalId,
}

/// The references of `text` (an error names a malformed or unknown one).
pub fn names(text: &str) -> Result<Vec<Ref<'_>>, String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without `}}}}` in '{text}'"))?;
        found.push(parse(after[..close].trim())?);
        rest = &after[close + 2..];
    }
    Ok(found)
}

fn parse(inner: &str) -> Result<Ref<'_>, String> {
    let named = |prefix: &str| {
        inner
            .strip_prefix(prefix)
            .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
    };
    if inner == "external_id" {
        Ok(Ref::ExternalId)
    } else if let Some(n) = named("secret.") {
        Ok(Ref::Secret(n))
    } else if let Some(n) = named("setting.") {
        Ok(Ref::Setting(n))
    } else if let Some(n) = named("record.") {
        Ok(Ref::Record(n))
    } else {
        Err(format!(
            "unknown reference {{{{{inner}}}}} (known: secret.NAME, setting.NAME, record.PATH, external_id)"
        ))
    }
}

/// `text` with each reference replaced by what `resolve` gives (an error names the one it
/// could not resolve, never a value).
pub fn render(text: &str, resolve: &dyn Fn(Ref<'_>) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "`{{` without `}}`".to_owned())?;
        let inner = after[..close].trim();
        let reference = parse(inner)?;
        let value = resolve(reference).ok_or_else(|| match reference {
            Ref::Secret(n) => format!("the credentials have no field `{n}`"),
            Ref::Setting(n) => format!("the settings have no field `{n}`"),
            Ref::Record(p) => format!("the record has no field `{p}`"),
            Ref::ExternalId => "the record was not pushed before".to_owned(),
        })?;
        out.push_str(&value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_named_and_rendered() {
        assert_eq!(
            names("/a/{{record.tail}}/{{ external_id }}").unwrap(),
            vec![Ref::Record("tail"), Ref::ExternalId]
        );
        assert!(names("{{password}}").is_err());
        assert!(names("{{secret.x").is_err());
        let r = render("Key {{secret.k}}", &|r| match r {
            Ref::Secret("k") => Some("v".into()),
            _ => None,
        });
        assert_eq!(r.unwrap(), "Key v");
        assert!(
            render("{{setting.x}}", &|_| None)
                .unwrap_err()
                .contains("settings")
        );
    }
}
