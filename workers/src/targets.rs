//! Which addresses outbound requests may reach (CONTRACT.md, the private-targets setting).
//! By default only public addresses: a job's URL must not reach loopback, the private
//! networks, link-local (cloud metadata at 169.254.169.254) or other internal ranges. The check
//! runs at connect time, on the addresses the name resolves to (so a DNS answer that changes
//! between check and use cannot slip through), and on literal IP addresses in URLs. Every
//! outbound client is built here, without the environment's proxies (see [`client_builder`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The policy for outbound targets: which addresses requests may reach, and what a refusal
/// tells the operator to do about it (the binary names its own setting; the engine knows none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    allowed: Allowed,
    remedy: Option<String>,
}

/// Which addresses a policy lets through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Allowed {
    /// Public addresses only (the default).
    #[default]
    PublicOnly,
    /// Any address (tests and local demos).
    All,
    /// Public addresses and these networks.
    Networks(Vec<Network>),
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
    /// Any address (tests and local demos).
    pub fn allow_all() -> TargetPolicy {
        TargetPolicy {
            allowed: Allowed::All,
            remedy: None,
        }
    }

    /// Reads the value of the private-targets setting: unset, empty or `0` = public only;
    /// `1` or `true` = anything; otherwise a comma-separated list of CIDR networks.
    pub fn parse(value: Option<&str>) -> Result<TargetPolicy, String> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(TargetPolicy::default());
        };
        let allowed = match value.to_ascii_lowercase().as_str() {
            "0" | "false" | "no" => Allowed::PublicOnly,
            "1" | "true" | "yes" => Allowed::All,
            _ => Allowed::Networks(
                value
                    .split(',')
                    .map(Network::parse)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(TargetPolicy {
            allowed,
            remedy: None,
        })
    }

    /// The same policy, whose refusals end with `remedy` (e.g. which setting allows more).
    pub fn with_remedy(mut self, remedy: impl Into<String>) -> TargetPolicy {
        self.remedy = Some(remedy.into());
        self
    }

    /// Whether every address is allowed.
    pub fn allows_all(&self) -> bool {
        self.allowed == Allowed::All
    }

    /// Whether some internal addresses are allowed (`1` or a CIDR list): then plain `http`
    /// URLs are accepted too (local receivers have no certificate).
    pub fn allows_private(&self) -> bool {
        self.allowed != Allowed::PublicOnly
    }

    /// Whether a connection to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match &self.allowed {
            Allowed::All => true,
            _ if !is_internal(ip) => true,
            Allowed::PublicOnly => false,
            Allowed::Networks(networks) => networks.iter().any(|n| n.contains(ip)),
        }
    }

    /// The refusal of `host`, which resolved only to these (internal) addresses.
    pub fn refuse(&self, host: &str, addrs: &[IpAddr]) -> RefusedTarget {
        let addrs: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
        RefusedTarget {
            host: host.to_owned(),
            addrs: addrs.join(", "),
            remedy: self
                .remedy
                .clone()
                .unwrap_or_else(|| "the target policy allows public addresses only".to_owned()),
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
/// documentation ranges, and their IPv6 counterparts (unique local, link-local, the
/// deprecated site-local). IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`,
/// compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo's client) are
/// judged by the IPv4 address they reach.
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
    if let Some(v4) = embedded_v4(ip) {
        return is_internal_v4(v4);
    }
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10 (deprecated,
        // still routed inside some networks).
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        // Documentation 2001:db8::/32, discard-only 100::/64.
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])
        // Local-use NAT64 64:ff9b:1::/48 (RFC 8215): a translator inside the network.
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001)
        // The rest of 64:ff9b::/32 is reserved; only the /96 above carries a known address.
        || (s[0] == 0x0064 && s[1] == 0xff9b)
}

/// The IPv4 address an IPv6 address reaches, for the forms that carry one: IPv4-compatible
/// `::a.b.c.d` (deprecated, `::` and `::1` excepted), NAT64 `64:ff9b::a.b.c.d`, 6to4
/// `2002:AABB:CCDD::/48` and Teredo `2001:0::/32` (the client address, inverted).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let last = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(last);
    }
    if s[..6] == [0x0064, 0xff9b, 0, 0, 0, 0] {
        return Some(last);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        return Some(Ipv4Addr::from(!u32::from(last)));
    }
    None
}

/// The error a refused target produces (found in the error chain to classify it as a
/// client error: retrying cannot help).
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to internal addresses ({addrs}); {remedy}")]
pub struct RefusedTarget {
    host: String,
    addrs: String,
    remedy: String,
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
                return Err(Box::new(policy.refuse(&host, &ips)) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// A client builder whose connections obey `policy` for names; pair it with
/// [`check_literal`] for URLs that hold an IP address (those skip the resolver).
///
/// Proxies from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`) are off: through a
/// proxy the target's name is resolved by the proxy, never by the guarded resolver, so any
/// internal address would be reachable.
pub fn client_builder(policy: &TargetPolicy) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder().no_proxy();
    if policy.allows_all() {
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
        Err(policy.refuse(&ip.to_string(), &[ip]))
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
        // (address, what it is, refused?)
        let table = [
            ("127.0.0.1", "IPv4 loopback", true),
            ("10.1.2.3", "IPv4 private", true),
            ("172.16.0.1", "IPv4 private", true),
            ("192.168.1.1", "IPv4 private", true),
            ("169.254.169.254", "IPv4 link-local (cloud metadata)", true),
            ("100.64.0.1", "shared address space (CGNAT)", true),
            ("0.0.0.0", "IPv4 unspecified", true),
            ("255.255.255.255", "IPv4 broadcast", true),
            ("93.184.216.34", "IPv4 public", false),
            ("1.1.1.1", "IPv4 public", false),
            ("172.32.0.1", "IPv4 public next to 172.16/12", false),
            ("::1", "IPv6 loopback", true),
            ("::", "IPv6 unspecified", true),
            ("fd00::1", "unique local", true),
            ("fe80::1", "link-local", true),
            ("2606:4700:4700::1111", "IPv6 public", false),
            ("fec0::1", "site-local fec0::/10", true),
            ("feff:ffff::1", "site-local, top of fec0::/10", true),
            ("ff02::1", "multicast", true),
            ("2001:db8::1", "documentation", true),
            ("2002:0a00:0001::1", "6to4 of 10.0.0.1", true),
            ("2002:7f00:0001::", "6to4 of 127.0.0.1", true),
            ("2002:a9fe:a9fe::1", "6to4 of 169.254.169.254", true),
            ("2002:0808:0808::1", "6to4 of 8.8.8.8", false),
            ("64:ff9b::a00:1", "NAT64 of 10.0.0.1", true),
            ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1", true),
            ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254", true),
            ("64:ff9b::808:808", "NAT64 of 8.8.8.8", false),
            ("64:ff9b:1::808:808", "local-use NAT64 64:ff9b:1::/48", true),
            ("64:ff9b:1:ffff::1", "local-use NAT64, end of the /48", true),
            ("64:ff9b:2::808:808", "reserved rest of 64:ff9b::/32", true),
            ("::127.0.0.1", "IPv4-compatible of 127.0.0.1", true),
            ("::10.0.0.1", "IPv4-compatible of 10.0.0.1", true),
            (
                "::169.254.169.254",
                "IPv4-compatible of the metadata address",
                true,
            ),
            ("::8.8.8.8", "IPv4-compatible of 8.8.8.8", false),
            ("::ffff:127.0.0.1", "IPv4-mapped of 127.0.0.1", true),
            ("::ffff:192.168.0.1", "IPv4-mapped of 192.168.0.1", true),
            ("::ffff:8.8.8.8", "IPv4-mapped of 8.8.8.8", false),
            (
                "2001:0:4136:e378:8000:63bf:f5ff:fffe",
                "Teredo client 10.0.0.1",
                true,
            ),
            (
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                "Teredo client 192.0.2.45",
                true,
            ),
            (
                "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
                "Teredo client 8.8.8.8",
                false,
            ),
            ("100::1", "discard-only 100::/64", true),
        ];
        for (addr, what, refused) in table {
            assert_eq!(
                !policy.allows(ip(addr)),
                refused,
                "{addr} ({what}) must be {}",
                if refused { "refused" } else { "allowed" }
            );
        }
    }

    #[test]
    fn an_allow_list_of_ipv4_networks_also_covers_the_mapped_form() {
        let listed = TargetPolicy::parse(Some("10.0.0.0/8")).unwrap();
        assert!(listed.allows(ip("::ffff:10.1.2.3")));
        assert!(!listed.allows(ip("::ffff:192.168.0.1")));
    }

    #[test]
    fn the_setting_allows_everything_or_listed_networks() {
        assert_eq!(TargetPolicy::parse(None), Ok(TargetPolicy::default()));
        assert_eq!(TargetPolicy::parse(Some("0")), Ok(TargetPolicy::default()));
        assert_eq!(
            TargetPolicy::parse(Some("1")),
            Ok(TargetPolicy::allow_all())
        );
        let listed = TargetPolicy::parse(Some("10.0.0.0/8, 127.0.0.1")).unwrap();
        assert!(listed.allows(ip("10.9.9.9")));
        assert!(listed.allows(ip("127.0.0.1")));
        assert!(!listed.allows(ip("127.0.0.2")));
        assert!(!listed.allows(ip("192.168.0.1")));
        assert!(listed.allows(ip("8.8.8.8")));
        assert!(TargetPolicy::parse(Some("10.0.0.0/33")).is_err());
        assert!(TargetPolicy::parse(Some("localhost")).is_err());
    }

    #[test]
    fn a_refusal_says_what_the_policy_allows_or_the_remedy_its_owner_gave() {
        let addr = [ip("127.0.0.1")];
        let plain = TargetPolicy::default()
            .refuse("localhost", &addr)
            .to_string();
        assert_eq!(
            plain,
            "localhost resolves only to internal addresses (127.0.0.1); the target policy allows public addresses only"
        );
        let named = TargetPolicy::default()
            .with_remedy("set THE_SETTING to allow them")
            .refuse("localhost", &addr)
            .to_string();
        assert!(
            named.ends_with("; set THE_SETTING to allow them"),
            "{named}"
        );
    }
}
