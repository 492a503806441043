//! The provider connectors, one module each, registered in
//! [`Connectors::builtin`](crate::sync::connector::Connectors::builtin).

pub mod avinode;
pub mod email;
pub mod foreflight;
pub mod manifest;
pub mod notifications;
pub mod quickbooks;
pub mod salesforce;
pub mod slack;
pub mod stripe;
