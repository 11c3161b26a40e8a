//! Outbound proxies for upstream calls: HTTP CONNECT and SOCKS5 (with credentials), chosen per
//! request from the group's `proxy_url` or, when it is empty, from `HTTP_PROXY` / `HTTPS_PROXY` /
//! `NO_PROXY`. awc has no proxy support of its own, so this is the TCP connector it dials with;
//! awc still layers TLS over the tunnel for `https://` upstreams.

use std::fmt;
use std::sync::Arc;

use actix_service::Service;
use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use awc::http::Uri;
use base64::Engine;
use futures_util::future::LocalBoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest CONNECT reply head accepted from a proxy.
const MAX_CONNECT_REPLY: usize = 8 * 1024;

/// One outbound proxy.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum OutboundProxy {
    /// `http://[user:pass@]host:port`: tunnels with `CONNECT`.
    Http {
        host: String,
        port: u16,
        auth: Option<(String, String)>,
    },
    /// `socks5://` or `socks5h://[user:pass@]host:port`.
    Socks5 {
        host: String,
        port: u16,
        auth: Option<(String, String)>,
    },
}

impl fmt::Debug for OutboundProxy {
    /// Credentials are secrets: only the scheme and address are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundProxy::Http { host, port, .. } => write!(f, "http://{host}:{port}"),
            OutboundProxy::Socks5 { host, port, .. } => write!(f, "socks5://{host}:{port}"),
        }
    }
}

impl OutboundProxy {
    /// Parses a proxy URL. `https://` proxies (TLS to the proxy itself) are not supported.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw.trim()).map_err(|e| format!("invalid proxy URL: {e}"))?;
        let host = url.host_str().ok_or("proxy URL has no host")?.to_string();
        let auth = (!url.username().is_empty()).then(|| {
            let decode = |s: &str| {
                url::form_urlencoded::parse(s.as_bytes())
                    .map(|(k, _)| k.into_owned())
                    .next()
                    .unwrap_or_default()
            };
            (decode(url.username()), decode(url.password().unwrap_or("")))
        });
        match url.scheme() {
            "http" => Ok(OutboundProxy::Http {
                host,
                port: url.port().unwrap_or(80),
                auth,
            }),
            "socks5" | "socks5h" => Ok(OutboundProxy::Socks5 {
                host,
                port: url.port().unwrap_or(1080),
                auth,
            }),
            other => Err(format!(
                "unsupported proxy scheme '{other}' (use http:// or socks5://)"
            )),
        }
    }
}

/// Which proxy, if any, each upstream goes through.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProxyRoute {
    /// For `http://` upstreams.
    pub http: Option<OutboundProxy>,
    /// For `https://` upstreams.
    pub https: Option<OutboundProxy>,
    /// Hosts reached directly: exact names, `.suffix` / `suffix` domain matches, or `*`.
    pub no_proxy: Vec<String>,
}

impl ProxyRoute {
    /// A group's `proxy_url` when set and valid, else the environment's proxies.
    pub fn resolve(group_proxy_url: &str, env: &ProxyRoute) -> ProxyRoute {
        let url = group_proxy_url.trim();
        if url.is_empty() {
            return env.clone();
        }
        match OutboundProxy::parse(url) {
            Ok(proxy) => ProxyRoute {
                http: Some(proxy.clone()),
                https: Some(proxy),
                no_proxy: Vec::new(),
            },
            Err(err) => {
                tracing::warn!(error = %err, "Ignoring a group proxy_url; using the environment's proxies.");
                env.clone()
            }
        }
    }

    /// True when no upstream goes through a proxy.
    pub fn is_direct(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    fn for_target(&self, scheme: &str, host: &str) -> Option<&OutboundProxy> {
        let bypass = self.no_proxy.iter().any(|rule| {
            let rule = rule.trim().trim_start_matches('.');
            rule == "*" || host == rule || host.ends_with(&format!(".{rule}"))
        });
        if bypass {
            return None;
        }
        if scheme == "https" {
            self.https.as_ref()
        } else {
            self.http.as_ref()
        }
    }
}

/// awc's TCP connector: dials directly or through the route's proxy.
#[derive(Clone)]
pub struct Dialer {
    route: Arc<ProxyRoute>,
}

impl Dialer {
    /// A dialer following `route`.
    pub fn new(route: ProxyRoute) -> Self {
        Self {
            route: Arc::new(route),
        }
    }
}

impl Service<ConnectInfo<Uri>> for Dialer {
    type Response = Connection<Uri, TcpStream>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, info: ConnectInfo<Uri>) -> Self::Future {
        let uri = info.request().clone();
        let host = info
            .hostname()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = info.port();
        let proxy = self
            .route
            .for_target(uri.scheme_str().unwrap_or("http"), &host)
            .cloned();
        Box::pin(async move {
            let stream = match proxy {
                None => TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(ConnectError::Io)?,
                Some(OutboundProxy::Http {
                    host: p_host,
                    port: p_port,
                    auth,
                }) => {
                    let stream = TcpStream::connect((p_host.as_str(), p_port))
                        .await
                        .map_err(ConnectError::Io)?;
                    http_connect(stream, &host, port, auth.as_ref())
                        .await
                        .map_err(ConnectError::Io)?
                }
                Some(OutboundProxy::Socks5 {
                    host: p_host,
                    port: p_port,
                    auth,
                }) => {
                    let proxy_addr = (p_host.as_str(), p_port);
                    let target = (host.as_str(), port);
                    let connected = match &auth {
                        Some((user, pass)) => {
                            tokio_socks::tcp::Socks5Stream::connect_with_password(
                                proxy_addr, target, user, pass,
                            )
                            .await
                        }
                        None => tokio_socks::tcp::Socks5Stream::connect(proxy_addr, target).await,
                    };
                    connected
                        .map_err(|e| {
                            ConnectError::Io(std::io::Error::other(format!("SOCKS5 proxy: {e}")))
                        })?
                        .into_inner()
                }
            };
            stream.set_nodelay(true).map_err(ConnectError::Io)?;
            Ok(Connection::new(uri, stream))
        })
    }
}

/// Opens a tunnel through an HTTP proxy with `CONNECT host:port`.
async fn http_connect(
    mut stream: TcpStream,
    host: &str,
    port: u16,
    auth: Option<&(String, String)>,
) -> std::io::Result<TcpStream> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, pass)) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    // Read the reply head byte by byte: anything after it belongs to the tunnel.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_CONNECT_REPLY {
            return Err(std::io::Error::other(
                "HTTP proxy sent an oversized CONNECT reply",
            ));
        }
        head.push(stream.read_u8().await?);
    }
    let status_line = String::from_utf8_lossy(&head);
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(std::io::Error::other(format!(
            "HTTP proxy refused CONNECT with status {status}"
        )));
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_with_credentials() {
        assert_eq!(
            OutboundProxy::parse("http://u%40x:p@proxy:3128").unwrap(),
            OutboundProxy::Http {
                host: "proxy".into(),
                port: 3128,
                auth: Some(("u@x".into(), "p".into()))
            }
        );
        assert_eq!(
            OutboundProxy::parse("socks5h://h").unwrap(),
            OutboundProxy::Socks5 {
                host: "h".into(),
                port: 1080,
                auth: None
            }
        );
        assert!(OutboundProxy::parse("ftp://h").is_err());
        assert!(
            !format!("{:?}", OutboundProxy::parse("http://u:secret@h:1").unwrap())
                .contains("secret")
        );
    }

    #[test]
    fn no_proxy_and_scheme_choose_the_route() {
        let proxy = OutboundProxy::parse("http://p:1").unwrap();
        let route = ProxyRoute {
            http: None,
            https: Some(proxy.clone()),
            no_proxy: vec![".internal".into(), "localhost".into()],
        };
        assert_eq!(route.for_target("https", "api.openai.com"), Some(&proxy));
        assert_eq!(route.for_target("http", "api.openai.com"), None);
        assert_eq!(route.for_target("https", "svc.internal"), None);
        assert_eq!(route.for_target("https", "localhost"), None);
        let group = ProxyRoute::resolve("socks5://s:9", &route);
        assert!(group.no_proxy.is_empty() && group.http.is_some());
        assert_eq!(ProxyRoute::resolve("  ", &route), route);
        assert_eq!(ProxyRoute::resolve("nonsense", &route), route);
    }
}
