//! Shared state backends. The stores behind traits (sessions now; budgets and
//! rate limits later) pick their implementation from `[state]`; this module holds
//! what every Redis-backed store shares: the connection pool, the key layout and
//! how Redis failures are classified.

pub mod redis;
