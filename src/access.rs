//! Who is asking, and whether to serve them: the client's address (behind a trusted proxy
//! too), the host name a request is for, and the origin of a page that sends it.
//!
//! Browsers enforce the same-origin policy by *name*. A hostile page can point its own name
//! at this server (DNS rebinding) and then make the visitor's browser talk to it as
//! "same origin". The server therefore answers only to names it knows ([`Access::check_host`])
//! and accepts state-changing requests from pages only of origins it knows
//! ([`Access::check_origin`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use actix_web::HttpRequest;

use crate::config::Config;
use crate::error::ApiError;

/// The host and origin rules, from the configuration.
#[derive(Debug, Clone)]
pub struct Access {
    /// Host names served besides IP addresses and `localhost` (lower case, no port).
    hosts: Vec<String>,
    /// Any host name is served (`--allowed-hosts '*'`).
    any_host: bool,
    /// Origins allowed besides the server's own (as configured, compared ignoring case).
    origins: Vec<String>,
    /// Any origin is allowed (`--allowed-origins '*'`).
    any_origin: bool,
}

impl Access {
    /// The rules of `--allowed-hosts` and `--allowed-origins`. The hosts of allowed origins
    /// are allowed hosts too: a page of such an origin is served by this server under that
    /// name.
    pub fn from_config(config: &Config) -> Self {
        let origin_hosts = config.allowed_origins.iter().filter_map(|origin| {
            let url = url::Url::parse(origin).ok()?;
            url.host_str().map(str::to_owned)
        });
        let hosts: Vec<String> = config
            .allowed_hosts
            .iter()
            .cloned()
            .chain(origin_hosts)
            .map(|h| normalize_name(&h))
            .filter(|h| !h.is_empty() && h != "*")
            .collect();
        Access {
            hosts,
            any_host: config.allowed_hosts.iter().any(|h| h.trim() == "*"),
            origins: config.allowed_origins.clone(),
            any_origin: config.allowed_origins.iter().any(|o| o.trim() == "*"),
        }
    }

    /// Refuses a request for a host name this server does not answer to. IP addresses and
    /// `localhost` always work (no one else can make them point here); a request without a
    /// `Host` header comes from no browser and is let through.
    pub fn check_host(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(host) = req.headers().get("host") else {
            return Ok(());
        };
        let host = host.to_str().unwrap_or_default();
        if self.any_host || self.is_known_host(host) {
            Ok(())
        } else {
            Err(ApiError::HostNotAllowed(host.chars().take(100).collect()))
        }
    }

    fn is_known_host(&self, host: &str) -> bool {
        let name = host_name(host);
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = normalize_name(name);
        name == "localhost" || name.ends_with(".localhost") || self.hosts.contains(&name)
    }

    /// Refuses a request sent by a page of a foreign origin. Browsers send `Origin` on
    /// WebSocket upgrades and cross-site POSTs; other clients (bots, the bench) may omit it
    /// and are not subject to this check, which only stops other sites' pages from using a
    /// visitor's browser against this server. The server's own origin is the request's
    /// `Host`, which [`Access::check_host`] has vouched for.
    pub fn check_origin(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(origin) = req.headers().get("origin") else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or_default();
        if self.any_origin || self.origins.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
            return Ok(());
        }
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let same_origin = origin
            .split_once("://")
            .is_some_and(|(_, rest)| !host.is_empty() && rest.eq_ignore_ascii_case(host));
        if same_origin && self.check_host(req).is_ok() {
            Ok(())
        } else {
            Err(ApiError::OriginNotAllowed(
                origin.chars().take(100).collect(),
            ))
        }
    }
}

/// The name part of a `Host` header: without the port, and without the brackets of an IPv6
/// address.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// A host name as compared: lower case, without a trailing dot.
fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The client's IP: the peer address, or behind a trusted proxy the last X-Forwarded-For
/// entry (the one the proxy itself appended; earlier entries are client-controlled).
///
/// The last entry is the last value of the last header line: a client may send its own
/// `X-Forwarded-For` line, and the proxy adds another or appends to it.
pub fn client_ip(req: &HttpRequest, trust_proxy: bool) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if !trust_proxy {
        return peer;
    }
    req.headers()
        .get_all("x-forwarded-for")
        .last()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| parse_forwarded_ip(last.trim()))
        .unwrap_or(peer)
}

/// An address as proxies write it: `203.0.113.7`, `2001:db8::1`, or either with a port
/// (`203.0.113.7:5123`, `[2001:db8::1]:5123`).
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            let bracketed = entry.strip_prefix('[')?.strip_suffix(']')?;
            bracketed.parse().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use clap::Parser;

    fn access(flags: &[&str]) -> Access {
        let config =
            Config::parse_from(std::iter::once("watch-together").chain(flags.iter().copied()));
        Access::from_config(&config)
    }

    fn request(headers: &[(&str, &str)]) -> HttpRequest {
        headers
            .iter()
            .fold(TestRequest::default(), |r, h| r.insert_header(*h))
            .to_http_request()
    }

    #[test]
    fn addresses_and_localhost_are_always_served_other_names_when_listed() {
        let a = access(&[
            "--allowed-hosts",
            "Watch.Example",
            "--allowed-origins",
            "https://friends.example:8443",
        ]);
        for host in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "192.0.2.9",
            "localhost:8080",
            "app.localhost",
            "watch.example",
            "watch.example.:443",
            "friends.example:8080",
        ] {
            assert!(a.check_host(&request(&[("host", host)])).is_ok(), "{host}");
        }
        for host in [
            "evil.example:8080",
            "watch.example.evil.example",
            "",
            "127.0.0.1.nip.io",
        ] {
            assert!(a.check_host(&request(&[("host", host)])).is_err(), "{host}");
        }
        assert!(
            a.check_host(&request(&[])).is_ok(),
            "no Host: not a browser"
        );
        assert!(access(&["--allowed-hosts", "*"])
            .check_host(&request(&[("host", "anything.example")]))
            .is_ok());
    }

    #[test]
    fn a_rebound_name_is_not_its_own_origin() {
        let a = access(&[]);
        let own = request(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(a.check_origin(&own).is_ok());
        let rebound = request(&[
            ("host", "evil.example:8080"),
            ("origin", "http://evil.example:8080"),
        ]);
        assert!(a.check_origin(&rebound).is_err());
        let foreign = request(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(a.check_origin(&foreign).is_err());
        assert!(a
            .check_origin(&request(&[("host", "127.0.0.1:8080")]))
            .is_ok());
    }

    #[test]
    fn forwarded_entries_parse_with_and_without_ports() {
        for (entry, ip) in [
            ("203.0.113.7", "203.0.113.7"),
            ("203.0.113.7:5123", "203.0.113.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]:5123", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
        ] {
            assert_eq!(parse_forwarded_ip(entry), ip.parse().ok(), "{entry}");
        }
        for junk in ["", "unknown", "_hidden", "203.0.113.7:x", "[203.0.113.7"] {
            assert_eq!(parse_forwarded_ip(junk), None, "{junk}");
        }
    }
}
