//! `DATABASE_DSN` parsing: PostgreSQL URLs, MySQL URLs or Go-style `user:pass@tcp(host)/db` DSNs,
//! and anything else as a SQLite file path.

use std::fmt;

/// Where the database is.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file path.
    Sqlite(String),
    /// A `postgres://` URL.
    Postgres(String),
    /// A `mysql://` URL.
    Mysql(String),
}

impl DatabaseUrl {
    /// Interprets a DSN the way GPT-Load does, also accepting `mysql://` URLs.
    pub fn parse(dsn: &str) -> Result<Self, String> {
        let dsn = dsn.trim();
        if dsn.is_empty() {
            return Ok(DatabaseUrl::Sqlite("./data/gpt-load.db".to_string()));
        }
        if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(dsn.to_string()));
        }
        if dsn.starts_with("mysql://") {
            return Ok(DatabaseUrl::Mysql(strip_go_params(dsn)));
        }
        if let Some((creds, rest)) = dsn.split_once("@tcp(") {
            let (host, rest) = rest
                .split_once(')')
                .ok_or_else(|| "MySQL DSN has '@tcp(' without a closing ')'".to_string())?;
            let url = format!("mysql://{creds}@{host}{rest}");
            return Ok(DatabaseUrl::Mysql(strip_go_params(&url)));
        }
        let path = dsn.split('?').next().unwrap_or(dsn);
        let path = path.strip_prefix("sqlite://").unwrap_or(path);
        Ok(DatabaseUrl::Sqlite(path.to_string()))
    }

    /// Short name of the backend.
    pub fn backend(&self) -> &'static str {
        match self {
            DatabaseUrl::Sqlite(_) => "sqlite",
            DatabaseUrl::Postgres(_) => "postgres",
            DatabaseUrl::Mysql(_) => "mysql",
        }
    }
}

/// Go driver options (`parseTime`, `charset`, `loc`) mean nothing to mysql_async and some are
/// rejected by it, so they are dropped.
fn strip_go_params(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| {
            let name = p.split('=').next().unwrap_or("").to_ascii_lowercase();
            !matches!(
                name.as_str(),
                "parsetime" | "charset" | "loc" | "collation" | ""
            )
        })
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

impl fmt::Debug for DatabaseUrl {
    /// Passwords in DSNs are secrets: show the backend and host only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite:{path}"),
            DatabaseUrl::Postgres(url) | DatabaseUrl::Mysql(url) => {
                let host = url
                    .rsplit('@')
                    .next()
                    .unwrap_or("")
                    .split(['/', '?'])
                    .next()
                    .unwrap_or("");
                write!(f, "{}://…@{host}", self.backend())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_each_backend() {
        assert_eq!(
            DatabaseUrl::parse("").unwrap(),
            DatabaseUrl::Sqlite("./data/gpt-load.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("./x/y.db?_busy_timeout=1").unwrap(),
            DatabaseUrl::Sqlite("./x/y.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("postgres://u:p@h:5432/db?sslmode=disable").unwrap(),
            DatabaseUrl::Postgres("postgres://u:p@h:5432/db?sslmode=disable".into())
        );
        assert_eq!(
            DatabaseUrl::parse(
                "root:123456@tcp(mysql:3306)/gpt-load?charset=utf8mb4&parseTime=True&loc=Local"
            )
            .unwrap(),
            DatabaseUrl::Mysql("mysql://root:123456@mysql:3306/gpt-load".into())
        );
        assert_eq!(
            DatabaseUrl::parse("mysql://r@h/db").unwrap(),
            DatabaseUrl::Mysql("mysql://r@h/db".into())
        );
    }

    #[test]
    fn debug_hides_passwords() {
        let url = DatabaseUrl::parse("postgres://u:secretpw@db.host:5432/x").unwrap();
        let shown = format!("{url:?}");
        assert!(!shown.contains("secretpw"), "{shown}");
        assert!(shown.contains("db.host:5432"));
    }
}
