//! The providers of CONTRACT.md, by their ids, and the category that decides which role
//! may change an integration of that provider.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A third-party system Hangar integrates with. The ids are the contract's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Quickbooks,
    Stripe,
    Salesforce,
    Avinode,
    Slack,
    Email,
    Foreflight,
    Fltplan,
    Apg,
    Traxxall,
    Veryon,
    Cmp,
    Camp,
    Fuelerlinx,
    SatcomDirect,
    Honeywell,
    Asap,
}

/// Which role may change an integration: operations data (admin), safety (safety manager),
/// billing (owner or admin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// Operations systems (flight planning, maintenance, fuel, CRM, messaging, accounting).
    Ops,
    /// Safety reporting (ASAP Gateway).
    Safety,
    /// Billing (Stripe Connect).
    Billing,
}

impl Provider {
    /// Every provider, in the contract's order.
    pub const ALL: [Provider; 17] = [
        Provider::Quickbooks,
        Provider::Stripe,
        Provider::Salesforce,
        Provider::Avinode,
        Provider::Slack,
        Provider::Email,
        Provider::Foreflight,
        Provider::Fltplan,
        Provider::Apg,
        Provider::Traxxall,
        Provider::Veryon,
        Provider::Cmp,
        Provider::Camp,
        Provider::Fuelerlinx,
        Provider::SatcomDirect,
        Provider::Honeywell,
        Provider::Asap,
    ];

    /// The contract's id, e.g. `quickbooks`, `satcom_direct`.
    pub fn id(self) -> &'static str {
        match self {
            Provider::Quickbooks => "quickbooks",
            Provider::Stripe => "stripe",
            Provider::Salesforce => "salesforce",
            Provider::Avinode => "avinode",
            Provider::Slack => "slack",
            Provider::Email => "email",
            Provider::Foreflight => "foreflight",
            Provider::Fltplan => "fltplan",
            Provider::Apg => "apg",
            Provider::Traxxall => "traxxall",
            Provider::Veryon => "veryon",
            Provider::Cmp => "cmp",
            Provider::Camp => "camp",
            Provider::Fuelerlinx => "fuelerlinx",
            Provider::SatcomDirect => "satcom_direct",
            Provider::Honeywell => "honeywell",
            Provider::Asap => "asap",
        }
    }

    /// The category that decides the role needed to change the integration.
    pub fn category(self) -> Category {
        match self {
            Provider::Asap => Category::Safety,
            Provider::Stripe => Category::Billing,
            _ => Category::Ops,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A provider id that is not one of the contract's.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown provider `{0}` (known: quickbooks, stripe, salesforce, avinode, slack, email, foreflight, fltplan, apg, traxxall, veryon, cmp, camp, fuelerlinx, satcom_direct, honeywell, asap)"
)]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.id() == s)
            .ok_or_else(|| UnknownProvider(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_ids_are_refused() {
        for p in Provider::ALL {
            assert_eq!(p.id().parse::<Provider>().unwrap(), p);
            assert_eq!(serde_json::to_value(p).unwrap(), p.id());
        }
        assert!("quickbook".parse::<Provider>().is_err());
        assert_eq!(Provider::Asap.category(), Category::Safety);
        assert_eq!(Provider::Stripe.category(), Category::Billing);
    }
}
