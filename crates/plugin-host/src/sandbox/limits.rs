//! Where a plugin's limits are set: its memory, its instances and tables,
//! and the deadlines of its calls (in epoch ticks).

use std::time::Duration;

use wasmtime::{StoreLimits, StoreLimitsBuilder};
use ytdlp_host_config::LimitsConfig;

/// How often the epoch advances. Deadlines are whole ticks, so a call is
/// interrupted at most about one tick after its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Epoch ticks for a deadline: rounded up, at least one.
pub fn deadline_ticks(ms: u64) -> u64 {
    ms.div_ceil(EPOCH_TICK.as_millis() as u64).max(1)
}

/// The wall-clock bound of a call: the epoch deadline plus two ticks, so
/// that a plugin computing past its deadline is stopped by the epoch (a
/// clean trap) and only one blocked in a host call is cut by the timer.
pub fn wall_deadline(ms: u64) -> Duration {
    Duration::from_millis(ms) + 2 * EPOCH_TICK
}

/// The store limits of one plugin instance.
pub fn store_limits(limits: &LimitsConfig) -> StoreLimits {
    StoreLimitsBuilder::new()
        .memory_size(usize::try_from(limits.memory_mib << 20).unwrap_or(usize::MAX))
        .instances(64)
        .tables(64)
        .memories(16)
        .trap_on_grow_failure(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_ticks() {
        assert_eq!(deadline_ticks(0), 1);
        assert_eq!(deadline_ticks(10), 1);
        assert_eq!(deadline_ticks(11), 2);
        assert_eq!(deadline_ticks(500), 50);
    }
}
