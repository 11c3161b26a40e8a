//! Small real outbound proxies for tests: an HTTP CONNECT proxy and a SOCKS5 proxy on loopback,
//! each optionally requiring credentials and counting the tunnels it opened.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running test proxy.
pub struct TestProxy {
    pub addr: SocketAddr,
    tunnels: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TestProxy {
    /// Tunnels opened so far.
    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP proxy that only supports `CONNECT`, requiring `auth` when given.
pub async fn http_connect_proxy(auth: Option<(&str, &str)>) -> TestProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let expected = auth.map(|(u, p)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    });
    let counter = Arc::clone(&tunnels);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let expected = expected.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let Ok(b) = client.read_u8().await else {
                        return;
                    };
                    head.push(b);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let authorized = expected.as_ref().is_none_or(|e| {
                    head.lines().any(|l| {
                        l.to_ascii_lowercase().starts_with("proxy-authorization:")
                            && l[20..].trim() == e
                    })
                });
                if !head.starts_with("CONNECT ") || !authorized {
                    let _ = client
                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                        .await;
                    return;
                }
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    TestProxy {
        addr,
        tunnels,
        task,
    }
}

/// A SOCKS5 proxy (RFC 1928, CONNECT only), requiring username/password (RFC 1929) when given.
pub async fn socks5_proxy(auth: Option<(&str, &str)>) -> TestProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let auth = auth.map(|(u, p)| (u.to_string(), p.to_string()));
    let counter = Arc::clone(&tunnels);
    let task = tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let auth = auth.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let _ = socks5_session(client, auth, counter).await;
            });
        }
    });
    TestProxy {
        addr,
        tunnels,
        task,
    }
}

async fn socks5_session(
    mut client: TcpStream,
    auth: Option<(String, String)>,
    counter: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let version = client.read_u8().await?;
    assert_eq!(version, 5);
    let n = client.read_u8().await? as usize;
    let mut methods = vec![0u8; n];
    client.read_exact(&mut methods).await?;
    match &auth {
        Some((user, pass)) => {
            if !methods.contains(&2) {
                client.write_all(&[5, 0xff]).await?;
                return Ok(());
            }
            client.write_all(&[5, 2]).await?;
            let _ver = client.read_u8().await?;
            let ulen = client.read_u8().await? as usize;
            let mut u = vec![0u8; ulen];
            client.read_exact(&mut u).await?;
            let plen = client.read_u8().await? as usize;
            let mut p = vec![0u8; plen];
            client.read_exact(&mut p).await?;
            if u != user.as_bytes() || p != pass.as_bytes() {
                client.write_all(&[1, 1]).await?;
                return Ok(());
            }
            client.write_all(&[1, 0]).await?;
        }
        None => client.write_all(&[5, 0]).await?,
    }
    let mut req = [0u8; 4];
    client.read_exact(&mut req).await?;
    let host = match req[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let len = client.read_u8().await? as usize;
            let mut name = vec![0u8; len];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).to_string()
        }
        _ => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await?;
            std::net::Ipv6Addr::from(ip).to_string()
        }
    };
    let port = client.read_u16().await?;
    let mut upstream = TcpStream::connect((host.as_str(), port)).await?;
    counter.fetch_add(1, Ordering::SeqCst);
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
