//! Column types that read both our own schema and a GPT-Load 1.4.x schema adopted in place.
//!
//! GPT-Load's GORM models leave its JSON columns nullable (a Go `nil` map is stored as NULL) and,
//! on PostgreSQL, make them `json` and its Go `int` columns `bigint`. Adoption may only add to
//! that schema, so these types absorb the differences when values are read and written:
//! [`JsonText`] reads NULL as the JSON text `null` and [`Json`] binds as `json` on PostgreSQL
//! (which a `text` column accepts as an assignment cast, and a `json` column needs); [`Int32`]
//! reads a 2-, 4- or 8-byte integer on PostgreSQL.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::mysql::Mysql;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{BigInt, Integer, Text};
use diesel::sqlite::Sqlite;
use diesel::SqlType;

/// A JSON document stored as text (ours) or `json` (GPT-Load on PostgreSQL); NULL reads as `null`.
#[derive(Clone, Copy, Debug, Default, SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(oid = 114, array_oid = 199))]
#[diesel(sqlite_type(name = "Text"))]
#[diesel(mysql_type(name = "String"))]
pub struct JsonText;

/// What a NULL JSON column means: the JSON literal, which every reader already treats as absent.
const JSON_NULL: &str = "null";

macro_rules! json_text_backend {
    ($db:ty) => {
        impl FromSql<JsonText, $db> for String {
            fn from_sql(value: <$db as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                <String as FromSql<Text, $db>>::from_sql(value)
            }

            fn from_nullable_sql(
                value: Option<<$db as Backend>::RawValue<'_>>,
            ) -> deserialize::Result<Self> {
                match value {
                    Some(value) => <Self as FromSql<JsonText, $db>>::from_sql(value),
                    None => Ok(JSON_NULL.to_string()),
                }
            }
        }

        impl ToSql<JsonText, $db> for String {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, $db>) -> serialize::Result {
                <str as ToSql<Text, $db>>::to_sql(self.as_str(), out)
            }
        }

        impl ToSql<JsonText, $db> for str {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, $db>) -> serialize::Result {
                <str as ToSql<Text, $db>>::to_sql(self, out)
            }
        }
    };
}

json_text_backend!(Sqlite);
json_text_backend!(Mysql);
json_text_backend!(Pg);

/// A JSON document to write into a [`JsonText`] column (`#[diesel(serialize_as = Json)]`).
#[derive(Clone, Debug, diesel::AsExpression)]
#[diesel(sql_type = JsonText)]
pub struct Json(pub String);

impl From<String> for Json {
    fn from(text: String) -> Self {
        Json(text)
    }
}

macro_rules! json_to_sql {
    ($db:ty) => {
        impl ToSql<JsonText, $db> for Json {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, $db>) -> serialize::Result {
                <str as ToSql<Text, $db>>::to_sql(self.0.as_str(), out)
            }
        }
    };
}

json_to_sql!(Sqlite);
json_to_sql!(Mysql);
json_to_sql!(Pg);

/// A 32-bit integer read from a column GPT-Load made `bigint` on PostgreSQL
/// (`#[diesel(deserialize_as = Int32)]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, diesel::FromSqlRow)]
pub struct Int32(pub i32);

impl From<Int32> for i32 {
    fn from(value: Int32) -> Self {
        value.0
    }
}

macro_rules! int32_delegating_backend {
    ($db:ty) => {
        impl FromSql<Integer, $db> for Int32 {
            fn from_sql(value: <$db as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                <i32 as FromSql<Integer, $db>>::from_sql(value).map(Int32)
            }

            fn from_nullable_sql(
                value: Option<<$db as Backend>::RawValue<'_>>,
            ) -> deserialize::Result<Self> {
                value.map_or(Ok(Int32::NULL), <Self as FromSql<Integer, $db>>::from_sql)
            }
        }
    };
}

int32_delegating_backend!(Sqlite);
int32_delegating_backend!(Mysql);

impl FromSql<Integer, Pg> for Int32 {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let bytes = value.as_bytes();
        let wide = match bytes.len() {
            2 => i64::from(i16::from_be_bytes([bytes[0], bytes[1]])),
            4 => i64::from(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
            8 => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(bytes);
                i64::from_be_bytes(raw)
            }
            other => return Err(format!("an integer column sent {other} bytes").into()),
        };
        Ok(Int32(i32::try_from(wide)?))
    }

    fn from_nullable_sql(value: Option<PgValue<'_>>) -> deserialize::Result<Self> {
        value.map_or(Ok(Int32::NULL), <Self as FromSql<Integer, Pg>>::from_sql)
    }
}

impl Int32 {
    /// A NULL in a defaulted integer column (rows older than the column) reads as its default.
    const NULL: Int32 = Int32(0);
}

/// Text from a column GPT-Load leaves nullable; NULL (rows older than the column) reads as empty
/// (`#[diesel(deserialize_as = TextOrEmpty)]`).
#[derive(Clone, Debug, PartialEq, Eq, diesel::FromSqlRow)]
pub struct TextOrEmpty(pub String);

impl From<TextOrEmpty> for String {
    fn from(value: TextOrEmpty) -> Self {
        value.0
    }
}

/// A 64-bit integer from a column GPT-Load leaves nullable; NULL reads as 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, diesel::FromSqlRow)]
pub struct BigIntOrZero(pub i64);

impl From<BigIntOrZero> for i64 {
    fn from(value: BigIntOrZero) -> Self {
        value.0
    }
}

macro_rules! null_defaults {
    ($db:ty) => {
        impl FromSql<Text, $db> for TextOrEmpty {
            fn from_sql(value: <$db as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                <String as FromSql<Text, $db>>::from_sql(value).map(TextOrEmpty)
            }

            fn from_nullable_sql(
                value: Option<<$db as Backend>::RawValue<'_>>,
            ) -> deserialize::Result<Self> {
                value.map_or(
                    Ok(TextOrEmpty(String::new())),
                    <Self as FromSql<Text, $db>>::from_sql,
                )
            }
        }

        impl FromSql<BigInt, $db> for BigIntOrZero {
            fn from_sql(value: <$db as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                <i64 as FromSql<BigInt, $db>>::from_sql(value).map(BigIntOrZero)
            }

            fn from_nullable_sql(
                value: Option<<$db as Backend>::RawValue<'_>>,
            ) -> deserialize::Result<Self> {
                value.map_or(
                    Ok(BigIntOrZero(0)),
                    <Self as FromSql<BigInt, $db>>::from_sql,
                )
            }
        }
    };
}

null_defaults!(Sqlite);
null_defaults!(Mysql);
null_defaults!(Pg);
