//! Property tests of the manifest loader (`integrations/src/connectors/manifest/load.rs`) and
//! its response decoders: any text, valid test manifests (every auth kind, JSON and XML
//! styles) and the shipped templates under random edits load or are refused without a panic;
//! a refusal names the file it was given, a field and a problem, and a line inside the text
//! when it gives one; an unedited manifest loads. Cases: `PROPTEST_CASES` (default 256;
//! `scripts/proptest` runs 10⁶).

use hangar_integrations::connectors::manifest::decode::decode;
use hangar_integrations::connectors::manifest::load::{Document, LoadError};
use hangar_integrations::connectors::manifest::model::Format;
use hangar_integrations::connectors::manifest::templates::TEMPLATES;
use proptest::prelude::*;

use crate::manifest_support::{JSON_PAGES, Style, auth, manifest};

const AUTH_KINDS: [&str; 6] = [
    "api_key_header",
    "api_key_query",
    "basic",
    "bearer",
    "oauth",
    "session",
];

const XML_CURSOR: Style = Style {
    format: "xml",
    pagination: "cursor_token",
    cursor: "incrementing",
};

/// What an edit may insert: TOML syntax, the manifest's own markers and odd values.
const PIECES: [&str; 18] = [
    "[",
    "]",
    "\"",
    "=",
    "\n",
    "[[streams]]",
    "{{",
    "}}",
    "<<VENDOR:",
    ">>",
    "kind = \"offset\"",
    "-1",
    "1e400",
    "\u{0}",
    "é",
    "[auth]",
    "{{secret.",
    "path = \"",
];

/// One edit: where (a fraction of the text), what (insert a piece, insert random text,
/// delete a run of characters) and how much.
#[derive(Debug, Clone)]
enum Edit {
    Piece(f64, usize),
    Text(f64, String),
    Delete(f64, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0.0..=1.0f64, 0..PIECES.len()).prop_map(|(at, i)| Edit::Piece(at, i)),
        (0.0..=1.0f64, "\\PC{0,12}").prop_map(|(at, s)| Edit::Text(at, s)),
        (0.0..=1.0f64, 1..60usize).prop_map(|(at, n)| Edit::Delete(at, n)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let at = |f: f64| ((chars.len() as f64 * f) as usize).min(chars.len());
        match edit {
            Edit::Piece(f, i) => {
                let at = at(*f);
                chars.splice(at..at, PIECES[*i].chars());
            }
            Edit::Text(f, s) => {
                let at = at(*f);
                chars.splice(at..at, s.chars());
            }
            Edit::Delete(f, n) => {
                let at = at(*f);
                let end = (at + n).min(chars.len());
                chars.drain(at..end);
            }
        }
    }
    chars.into_iter().collect()
}

/// Loads `text` as `file`; a refusal must name `file`, a field and a problem, and any line
/// it gives must be one of the text's.
fn load_or_say_where(file: &str, text: &str) -> Result<(), LoadError> {
    let result = Document::parse(file, text).and_then(|doc| doc.manifest().map(drop));
    if let Err(e) = &result {
        assert_eq!(e.file, file, "{e}");
        assert!(!e.field.is_empty(), "no field: {e}");
        assert!(!e.problem.is_empty(), "no problem: {e}");
        if let Some(line) = e.line {
            assert!(
                line >= 1 && line <= text.lines().count().max(1) + 1,
                "line {line} of a {}-line text: {e}",
                text.lines().count()
            );
        }
        assert!(e.to_string().starts_with(file), "{e}");
    }
    result
}

proptest! {
    #[test]
    fn prop_manifest_any_text_names_the_file(
        text in prop_oneof!["\\PC*", "[\\[\\]\n=\"{}<>:a-z_0-9 .]{0,80}"],
    ) {
        let _ = load_or_say_where("any.toml", &text);
    }

    #[test]
    fn prop_manifest_edited_manifests_load_or_say_where(
        kind in 0..AUTH_KINDS.len(),
        xml in any::<bool>(),
        edits in prop::collection::vec(edit(), 0..6),
    ) {
        let (table, _) = auth(AUTH_KINDS[kind]);
        let good = manifest(&table, if xml { XML_CURSOR } else { JSON_PAGES });
        let result = load_or_say_where("edited.toml", &apply(&good, &edits));
        if edits.is_empty() {
            prop_assert!(result.is_ok(), "the unedited manifest is refused: {result:?}");
        }
    }

    #[test]
    fn prop_manifest_edited_templates_never_panic(
        which in 0..TEMPLATES.len(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let (_, file, text) = TEMPLATES[which];
        // A template has placeholders: it reads, but never becomes a manifest unedited.
        let _ = load_or_say_where(file, &apply(text, &edits));
    }

    #[test]
    fn prop_manifest_decoders_refuse_any_bytes_clearly(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        format in prop_oneof![Just(Format::Json), Just(Format::Xml), Just(Format::Csv)],
    ) {
        if let Err(problem) = decode(format, &bytes) {
            prop_assert!(!problem.is_empty());
        }
    }
}
