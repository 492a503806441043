//! The provider connectors, one module each, registered in
//! [`Connectors::builtin`](crate::sync::connector::Connectors::builtin).

pub mod email;
pub mod notifications;
pub mod quickbooks;
pub mod salesforce;
pub mod slack;
pub mod stripe;
