//! Key validation: sending a channel's validation request for a key, applying the result through
//! the key pool, and the leader's background validation round.

pub mod background;
pub mod prober;
