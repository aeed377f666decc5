//! Outbound TCP: the addresses a plugin may connect to, resolved from its
//! grants when it starts.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{Context, Result};
use wasmtime_wasi::sockets::SocketAddrUse;
use ytdlp_host_config::TcpGrant;

/// Resolved TCP grants: addresses, each with a port or any port.
#[derive(Debug, Default, Clone)]
pub struct TcpPolicy {
    rules: Vec<(IpAddr, Option<u16>)>,
    /// A grant named a host by name (the guest then needs name lookups).
    pub(crate) needs_name_lookup: bool,
    /// The names granted, normalised: the only ones the guest may look up.
    pub(crate) names: Vec<String>,
}

impl TcpPolicy {
    /// Resolves the grants' host names (blocking DNS: call it off the async
    /// threads).
    pub fn resolve(entries: &[String]) -> Result<TcpPolicy> {
        let mut out = TcpPolicy::default();
        for entry in entries {
            let TcpGrant { host, port } = TcpGrant::parse(entry)?;
            match host.parse::<IpAddr>() {
                Ok(ip) => out.rules.push((ip, port)),
                Err(_) => {
                    out.needs_name_lookup = true;
                    out.names.push(super::lookup::normal(&host));
                    let addrs = (host.as_str(), port.unwrap_or(1))
                        .to_socket_addrs()
                        .with_context(|| format!("tcp: cannot resolve `{host}`"))?;
                    out.rules.extend(addrs.map(|a| (a.ip(), port)));
                }
            }
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn allows(&self, addr: SocketAddr, usage: SocketAddrUse) -> bool {
        match usage {
            // The implicit bind before a connect asks for the wildcard
            // address and port 0: needed to connect at all, grants nothing.
            SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
            SocketAddrUse::TcpConnect => self
                .rules
                .iter()
                .any(|(ip, port)| *ip == addr.ip() && port.is_none_or(|p| p == addr.port())),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_grants_allow_exactly_what_they_name() {
        let g = TcpPolicy::resolve(&["127.0.0.1:6379".into(), "[::1]:*".into()]).unwrap();
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(g.allows(a("127.0.0.1:6379"), SocketAddrUse::TcpConnect));
        assert!(!g.allows(a("127.0.0.1:6380"), SocketAddrUse::TcpConnect));
        assert!(!g.allows(a("127.0.0.2:6379"), SocketAddrUse::TcpConnect));
        assert!(g.allows(a("[::1]:1"), SocketAddrUse::TcpConnect));
        assert!(g.allows(a("0.0.0.0:0"), SocketAddrUse::TcpBind));
        assert!(!g.allows(a("127.0.0.1:80"), SocketAddrUse::TcpBind));
        assert!(!g.allows(a("127.0.0.1:6379"), SocketAddrUse::UdpBind));
    }

    #[test]
    fn bad_grants_are_refused() {
        for bad in ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:http"] {
            assert!(TcpPolicy::resolve(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
