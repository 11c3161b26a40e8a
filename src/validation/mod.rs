//! Key validation: sending a channel's validation request for a key and applying the result to
//! the key's stored health (and the pool).

pub mod prober;
