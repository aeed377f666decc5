//! Where a plugin's limits are set: its memory and tables (summed over
//! every linear memory and table of its store, so neither many small
//! memories nor one `table.grow` gets past them), the number of its
//! instances, tables and memories, its WASI resources, and the deadlines of
//! its calls (in epoch ticks).

use std::time::Duration;

use wasmtime::ResourceLimiter;
use ytdlp_host_config::LimitsConfig;

/// Core instances of one plugin (a component holds several: its modules,
/// the WASI adapter, shims).
pub const MAX_INSTANCES: usize = 64;
/// Tables of one plugin.
pub const MAX_TABLES: usize = 16;
/// Linear memories of one plugin.
pub const MAX_MEMORIES: usize = 16;
/// Table elements of one plugin, all tables together (each is a pointer or
/// two on the host heap; real plugins use a few thousand).
pub const MAX_TABLE_ELEMENTS: usize = 100_000;
/// WASI resources (streams, pollables, sockets, ...) one plugin may hold
/// at once.
pub const MAX_WASI_RESOURCES: usize = 4096;

/// Which budget a plugin ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Memory,
    TableElements,
}

/// The limiter of one plugin's store. A growth past a budget traps the
/// plugin at once and records which budget it was, so the host's error
/// says so without reading anyone's wording.
#[derive(Debug)]
pub struct PluginLimiter {
    memory_limit: usize,
    memory_total: usize,
    table_total: usize,
    /// The last growth allowed, taken back if it then failed.
    last_memory_delta: usize,
    last_table_delta: usize,
    pub(crate) exceeded: Option<Exceeded>,
}

impl PluginLimiter {
    pub fn new(limits: &LimitsConfig) -> PluginLimiter {
        PluginLimiter {
            memory_limit: usize::try_from(limits.memory_mib.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            memory_total: 0,
            table_total: 0,
            last_memory_delta: 0,
            last_table_delta: 0,
            exceeded: None,
        }
    }

    pub fn exceeded(&self) -> Option<Exceeded> {
        self.exceeded
    }
}

impl ResourceLimiter for PluginLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let delta = desired.saturating_sub(current);
        let total = self.memory_total.saturating_add(delta);
        if total > self.memory_limit {
            self.exceeded = Some(Exceeded::Memory);
            wasmtime::bail!(
                "the plugin's memories would take {} MiB (limit {} MiB)",
                total >> 20,
                self.memory_limit >> 20
            );
        }
        self.memory_total = total;
        self.last_memory_delta = delta;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_total = self.memory_total.saturating_sub(self.last_memory_delta);
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let delta = desired.saturating_sub(current);
        let total = self.table_total.saturating_add(delta);
        if total > MAX_TABLE_ELEMENTS {
            self.exceeded = Some(Exceeded::TableElements);
            wasmtime::bail!(
                "the plugin's tables would hold {total} elements (limit {MAX_TABLE_ELEMENTS})"
            );
        }
        self.table_total = total;
        self.last_table_delta = delta;
        Ok(true)
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.table_total = self.table_total.saturating_sub(self.last_table_delta);
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_and_tables_are_summed_and_refused_past_the_budget() {
        let mut l = PluginLimiter::new(&LimitsConfig {
            memory_mib: 64,
            ..LimitsConfig::default()
        });
        // Twelve 6 MiB memories: each is small, together they are not.
        let mut refused = None;
        for i in 0..12 {
            if l.memory_growing(0, 6 << 20, None).is_err() {
                refused = Some(i);
                break;
            }
        }
        assert_eq!(refused, Some(10), "the 11th memory passes 64 MiB");
        assert_eq!(l.exceeded(), Some(Exceeded::Memory));
        let mut l = PluginLimiter::new(&LimitsConfig::default());
        assert!(l.table_growing(1, 1000, None).unwrap());
        assert!(l.table_growing(1, 1 << 30, None).is_err());
        assert_eq!(l.exceeded(), Some(Exceeded::TableElements));
    }

    #[test]
    fn deadlines_round_up_to_ticks() {
        assert_eq!(deadline_ticks(0), 1);
        assert_eq!(deadline_ticks(10), 1);
        assert_eq!(deadline_ticks(11), 2);
        assert_eq!(deadline_ticks(500), 50);
    }
}
