//! The loopback guard: load and faults are only ever aimed at this machine.

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::LoadError;

/// Accepts only `http://` URLs whose host is `127.0.0.1`, `::1` or
/// `localhost`, without credentials, query or fragment. Returns the URL
/// without its trailing `/`, ready for `{base}/api/v1/...`.
pub fn check_loopback(raw: &str) -> Result<String, LoadError> {
    let refuse = |reason: &str| LoadError::NotLoopback {
        url: raw.to_string(),
        reason: reason.to_string(),
    };
    let url = Url::parse(raw.trim()).map_err(|e| refuse(&format!("not a valid URL ({e})")))?;
    if url.scheme() != "http" {
        return Err(refuse(&format!(
            "scheme {:?} is not supported, use http://",
            url.scheme()
        )));
    }
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip == Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if !loopback {
        let host = url.host_str().unwrap_or("(none)");
        return Err(refuse(&format!("host {host} is not loopback")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("credentials in the URL are not allowed"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("a query or fragment is not allowed"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_hosts() {
        for (given, want) in [
            ("http://127.0.0.1:3001", "http://127.0.0.1:3001"),
            ("http://127.0.0.1:3001/", "http://127.0.0.1:3001"),
            ("http://localhost:8080", "http://localhost:8080"),
            ("http://LOCALHOST:8080", "http://localhost:8080"),
            ("http://[::1]:3001", "http://[::1]:3001"),
            ("http://127.0.0.1", "http://127.0.0.1"),
            (
                "http://127.0.0.1:3001/prefix/",
                "http://127.0.0.1:3001/prefix",
            ),
        ] {
            assert_eq!(check_loopback(given).unwrap(), want, "{given}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "http://10.0.0.1:3001",
            "http://192.168.1.5",
            "http://0.0.0.0:3001",
            "http://127.0.0.2:3001",
            "http://[::2]:3001",
            "http://example.com",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "https://127.0.0.1:3001",
            "ftp://127.0.0.1",
            "127.0.0.1:3001",
            "http://user:pw@127.0.0.1:3001",
            "http://127.0.0.1:3001/?x=1",
            "not a url",
            "",
        ] {
            let err = check_loopback(bad).expect_err(bad);
            assert!(
                matches!(err, LoadError::NotLoopback { .. }),
                "{bad}: {err:?}"
            );
            assert!(err.to_string().contains("only targets"), "{err}");
        }
    }
}
