//! The shipped templates, one per system that publishes nothing
//! (`integrations/manifests/<provider>.toml`, compiled in), and the built-in connectors made
//! from them, built once per process.

use std::sync::OnceLock;

use super::ManifestConnector;
use super::load::Document;
use crate::provider::Provider;

/// Each manifest provider's template: (provider, file, text).
pub const TEMPLATES: [(Provider, &str, &str); 10] = [
    (
        Provider::Fltplan,
        "integrations/manifests/fltplan.toml",
        include_str!("../../../manifests/fltplan.toml"),
    ),
    (
        Provider::Apg,
        "integrations/manifests/apg.toml",
        include_str!("../../../manifests/apg.toml"),
    ),
    (
        Provider::Traxxall,
        "integrations/manifests/traxxall.toml",
        include_str!("../../../manifests/traxxall.toml"),
    ),
    (
        Provider::Veryon,
        "integrations/manifests/veryon.toml",
        include_str!("../../../manifests/veryon.toml"),
    ),
    (
        Provider::Cmp,
        "integrations/manifests/cmp.toml",
        include_str!("../../../manifests/cmp.toml"),
    ),
    (
        Provider::Camp,
        "integrations/manifests/camp.toml",
        include_str!("../../../manifests/camp.toml"),
    ),
    (
        Provider::Fuelerlinx,
        "integrations/manifests/fuelerlinx.toml",
        include_str!("../../../manifests/fuelerlinx.toml"),
    ),
    (
        Provider::SatcomDirect,
        "integrations/manifests/satcom_direct.toml",
        include_str!("../../../manifests/satcom_direct.toml"),
    ),
    (
        Provider::Honeywell,
        "integrations/manifests/honeywell.toml",
        include_str!("../../../manifests/honeywell.toml"),
    ),
    (
        Provider::Asap,
        "integrations/manifests/asap.toml",
        include_str!("../../../manifests/asap.toml"),
    ),
];

/// The built-in manifest connectors (a template that does not read is left out and logged;
/// the test suite holds every one to reading).
pub fn builtin() -> &'static [ManifestConnector] {
    static BUILT: OnceLock<Vec<ManifestConnector>> = OnceLock::new();
    BUILT.get_or_init(|| {
        TEMPLATES
            .iter()
            .filter_map(|(_, file, text)| match Document::parse(file, text) {
                Ok(doc) => Some(ManifestConnector::new(doc)),
                Err(e) => {
                    tracing::error!(error = %e, "manifest template does not read");
                    None
                }
            })
            .collect()
    })
}

/// The built-in connector of `provider`, if it is a manifest provider.
pub fn connector(provider: Provider) -> Option<&'static ManifestConnector> {
    use crate::sync::connector::Connector;
    builtin().iter().find(|c| c.provider() == provider)
}
