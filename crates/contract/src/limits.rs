//! Bounds the contract states, checked by the host and by plugins alike.

/// Longest proxy timeout a backend may hand out, ms (`proxy.timeout-ms`).
pub const MAX_PROXY_TIMEOUT_MS: u32 = 600_000;

/// Longest window a plugin option may name (bans, pacing, learning), ms:
/// 30 days.
pub const MAX_WINDOW_MS: u64 = 30 * 24 * 3_600_000;

/// Shortest proxy timeout, ms.
pub const MIN_PROXY_TIMEOUT_MS: u32 = 1;
