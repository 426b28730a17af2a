//! Command-line addresses: `ip:port` or `host:port`, resolved once, when a binary starts.

use std::net::{SocketAddr, ToSocketAddrs as _};

/// `127.0.0.1:7001`, `[::1]:7001` or `localhost:7001`. A host name is resolved now (a
/// blocking lookup, meant for start-up) to its first IPv4 address, or its first address
/// if it has no IPv4 one, so every node that names a host the same way picks the same
/// address. `Err` says what was wrong, for the user.
pub fn resolve(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!(
            "'{text}' is not an address: expected HOST:PORT, e.g. 127.0.0.1:7001 or localhost:7001"
        ));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!(
            "'{text}' is not an address: expected HOST:PORT with a port of 0..=65535"
        ));
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve host '{host}' of '{text}': {error}"))?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("host '{host}' of '{text}' has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_parse_and_host_names_resolve() {
        assert_eq!(
            resolve("127.0.0.1:7001"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 7001)))
        );
        assert_eq!(
            resolve("[::1]:7001"),
            "[::1]:7001"
                .parse::<SocketAddr>()
                .map_err(|_| String::new())
        );
        let local = resolve("localhost:7001").expect("localhost resolves");
        assert!(local.ip().is_loopback() && local.port() == 7001, "{local}");
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        assert!(resolve("7001").unwrap_err().contains("expected HOST:PORT"));
        assert!(
            resolve("localhost:99999")
                .unwrap_err()
                .contains("port of 0..=65535")
        );
        assert!(resolve(":7001").unwrap_err().contains("expected HOST:PORT"));
        let unknown = resolve("no-such-host.invalid:7001").unwrap_err();
        assert!(
            unknown.contains("cannot resolve host 'no-such-host.invalid'"),
            "{unknown}"
        );
    }
}
