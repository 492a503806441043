//! Which addresses outbound requests may reach (CONTRACT.md, `HANGAR_ALLOW_PRIVATE_TARGETS`).
//! By default only public addresses: a job's URL must not reach loopback, the private
//! networks, link-local (cloud metadata at 169.254.169.254) or other internal ranges. The check
//! runs at connect time, on the addresses the name resolves to (so a DNS answer that changes
//! between check and use cannot slip through), and on literal IP addresses in URLs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The policy for outbound targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TargetPolicy {
    /// Public addresses only (the default).
    #[default]
    PublicOnly,
    /// Any address (`HANGAR_ALLOW_PRIVATE_TARGETS=1`: tests and local demos).
    AllowAll,
    /// Public addresses and these networks.
    AllowNetworks(Vec<Network>),
}

/// An IP network, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address (one host).
    pub fn parse(text: &str) -> Result<Network, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{text}': the prefix must be 0 to {max}"))?,
        };
        Ok(Network { addr, prefix })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl TargetPolicy {
    /// Reads the value of `HANGAR_ALLOW_PRIVATE_TARGETS`: unset, empty or `0` = public only;
    /// `1` or `true` = anything; otherwise a comma-separated list of CIDR networks.
    pub fn parse(value: Option<&str>) -> Result<TargetPolicy, String> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(TargetPolicy::PublicOnly);
        };
        match value.to_ascii_lowercase().as_str() {
            "0" | "false" | "no" => Ok(TargetPolicy::PublicOnly),
            "1" | "true" | "yes" => Ok(TargetPolicy::AllowAll),
            _ => value
                .split(',')
                .map(Network::parse)
                .collect::<Result<Vec<_>, _>>()
                .map(TargetPolicy::AllowNetworks),
        }
    }

    /// Whether a connection to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match self {
            TargetPolicy::AllowAll => true,
            _ if !is_internal(ip) => true,
            TargetPolicy::PublicOnly => false,
            TargetPolicy::AllowNetworks(networks) => networks.iter().any(|n| n.contains(ip)),
        }
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Loopback, private, link-local, shared (CGNAT), unspecified, broadcast, multicast and
/// documentation ranges, and their IPv6 counterparts (unique local, link-local).
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        || (first == 0x0064 && ip.segments()[1] == 0xff9b)
}

/// The error a refused target produces (found in the error chain to classify it as a
/// client error: retrying cannot help).
#[derive(Debug, thiserror::Error)]
#[error(
    "{host} resolves only to internal addresses ({addrs}); set HANGAR_ALLOW_PRIVATE_TARGETS to allow them"
)]
pub struct RefusedTarget {
    host: String,
    addrs: String,
}

impl RefusedTarget {
    /// The refusal of `host` with these addresses.
    pub fn new(host: &str, addrs: &[IpAddr]) -> RefusedTarget {
        let addrs: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
        RefusedTarget {
            host: host.to_owned(),
            addrs: addrs.join(", "),
        }
    }
}

/// A DNS resolver that drops the addresses the policy refuses.
#[derive(Debug)]
struct GuardedResolver {
    policy: TargetPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if allowed.is_empty() && !found.is_empty() {
                let ips: Vec<IpAddr> = found.iter().map(SocketAddr::ip).collect();
                return Err(Box::new(RefusedTarget::new(&host, &ips)) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// A client builder whose connections obey `policy` for names; pair it with
/// [`check_literal`] for URLs that hold an IP address (those skip the resolver).
pub fn client_builder(policy: &TargetPolicy) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    if *policy == TargetPolicy::AllowAll {
        builder
    } else {
        builder.dns_resolver(Arc::new(GuardedResolver {
            policy: policy.clone(),
        }))
    }
}

/// The refusal inside a request error, if the policy is why the request failed.
pub fn refusal(error: &reqwest::Error) -> Option<&RefusedTarget> {
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        if let Some(refused) = inner.downcast_ref::<RefusedTarget>() {
            return Some(refused);
        }
        cause = inner.source();
    }
    None
}

/// Refuses a URL whose host is a literal IP address the policy does not allow.
pub fn check_literal(policy: &TargetPolicy, url: &reqwest::Url) -> Result<(), RefusedTarget> {
    let Some(ip) = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
    else {
        return Ok(());
    };
    if policy.allows(ip) {
        Ok(())
    } else {
        Err(RefusedTarget::new(&ip.to_string(), &[ip]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_ranges_are_refused_by_default_and_public_ones_pass() {
        let policy = TargetPolicy::default();
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(!policy.allows(ip(internal)), "{internal} must be refused");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
        ] {
            assert!(policy.allows(ip(public)), "{public} must pass");
        }
    }

    #[test]
    fn the_setting_allows_everything_or_listed_networks() {
        assert_eq!(TargetPolicy::parse(None), Ok(TargetPolicy::PublicOnly));
        assert_eq!(TargetPolicy::parse(Some("0")), Ok(TargetPolicy::PublicOnly));
        assert_eq!(TargetPolicy::parse(Some("1")), Ok(TargetPolicy::AllowAll));
        let listed = TargetPolicy::parse(Some("10.0.0.0/8, 127.0.0.1")).unwrap();
        assert!(listed.allows(ip("10.9.9.9")));
        assert!(listed.allows(ip("127.0.0.1")));
        assert!(!listed.allows(ip("127.0.0.2")));
        assert!(!listed.allows(ip("192.168.0.1")));
        assert!(listed.allows(ip("8.8.8.8")));
        assert!(TargetPolicy::parse(Some("10.0.0.0/33")).is_err());
        assert!(TargetPolicy::parse(Some("localhost")).is_err());
    }
}
