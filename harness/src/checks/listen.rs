//! Whether something really listens behind a TCP address. The engine's userland proxy
//! (docker-proxy, the default) accepts a connection on a published host port even when nothing
//! listens inside the container, dials the container, and closes the accepted connection when
//! that is refused. So a connection closed by the other side before it sent a byte, within
//! [`CLOSE_WINDOW`], is the proxy saying "refused", not a listener. A listener keeps the
//! connection open (waiting for a request) or speaks first; either is proof.

use std::time::Duration;

use tokio::io::AsyncReadExt;

/// How long a fresh connection is watched for the proxy's close. docker-proxy closes within
/// milliseconds of the container refusing it.
pub(crate) const CLOSE_WINDOW: Duration = Duration::from_millis(300);

/// What a connection attempt to an address showed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Listen {
    /// Connected, and the connection stayed open (or the other side spoke first).
    Listening,
    /// Connected, then closed by the other side before a byte: nothing behind the proxy.
    ClosedAtOnce,
    /// The connection was refused (or reset) outright.
    Refused(String),
    /// No answer within the bound.
    Silent,
}

/// Connects to `addr` (within `within`) and watches the connection for [`CLOSE_WINDOW`].
pub(crate) async fn listen(addr: &str, within: Duration) -> Listen {
    let mut stream = match tokio::time::timeout(within, tokio::net::TcpStream::connect(addr)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Listen::Refused(e.to_string()),
        Err(_) => return Listen::Silent,
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(CLOSE_WINDOW, stream.read(&mut byte)).await {
        Ok(Ok(0)) => Listen::ClosedAtOnce,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Listen::ClosedAtOnce,
        Ok(Ok(_)) | Ok(Err(_)) | Err(_) => Listen::Listening,
    }
}

/// The failure message for a container port that `listen` did not find listening through the
/// published host address `addr`; None when it listens.
pub(crate) fn not_listening(
    seen: &Listen,
    container_port: u16,
    addr: &str,
    within: Duration,
) -> Option<String> {
    match seen {
        Listen::Listening => None,
        Listen::ClosedAtOnce => Some(format!(
            "nothing listens on container port {container_port} (the host port is published; the engine's proxy accepted and closed the connection on {addr})"
        )),
        Listen::Refused(e) => Some(format!(
            "nothing listens on container port {container_port}: {addr} refused a TCP connection ({e})"
        )),
        Listen::Silent => Some(format!(
            "container port {container_port}: {addr} did not accept a TCP connection within {within:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener that keeps the connection open, one that accepts and closes at once (what
    /// docker-proxy does with nothing behind it), and a closed port — on loopback.
    #[tokio::test]
    async fn tells_a_listener_from_an_accept_and_close() {
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open_addr = open.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = open.accept().await {
                held.push(s);
            }
        });
        let closer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closer_addr = closer.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((s, _)) = closer.accept().await {
                drop(s);
            }
        });
        let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone_addr = gone.local_addr().unwrap().to_string();
        drop(gone);
        let within = Duration::from_secs(2);
        assert_eq!(listen(&open_addr, within).await, Listen::Listening);
        assert_eq!(listen(&closer_addr, within).await, Listen::ClosedAtOnce);
        assert!(matches!(
            listen(&gone_addr, within).await,
            Listen::Refused(_)
        ));
        let msg = not_listening(&Listen::ClosedAtOnce, 9000, "127.0.0.1:1", within).unwrap();
        assert!(msg.starts_with("nothing listens on container port 9000 (the host port is published; the engine's proxy accepted and closed the connection"), "{msg}");
    }
}
