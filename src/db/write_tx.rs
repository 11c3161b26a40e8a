//! Transactions that read before they write. On SQLite such a transaction must take the write
//! lock up front (`BEGIN IMMEDIATE`): a plain `BEGIN` reads under a snapshot and then fails with
//! "database is locked" if another connection (the request-log writer, say) committed before it
//! could upgrade. PostgreSQL and MySQL use an ordinary transaction.

/// Runs `$body` in a write transaction on a pooled connection of whichever backend `$db` is,
/// with `$conn` bound to the transaction's connection. `$body` must evaluate to
/// `Result<T, DbError>`.
#[macro_export]
macro_rules! with_write_tx {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite(pool) => {
                let mut guard = $crate::db::checkout(pool).await?;
                guard.immediate_transaction(async |$conn| $body).await
            }
            $crate::db::Database::Postgres(pool) => {
                let mut guard = $crate::db::checkout(pool).await?;
                diesel_async::AsyncConnection::transaction(&mut *guard, async |$conn| $body).await
            }
            $crate::db::Database::Mysql(pool) => {
                let mut guard = $crate::db::checkout(pool).await?;
                diesel_async::AsyncConnection::transaction(&mut *guard, async |$conn| $body).await
            }
        }
    };
}
