//! The worker runner: a pool of warm Python processes that drive yt-dlp's
//! embedding API (`yt_dlp.YoutubeDL(params).download([url])`), one job at a
//! time each, so a download does not pay Python's start-up and yt-dlp's
//! import again.
//!
//! - The worker script (`worker.py`) ships inside the binary; it is
//!   written once to the cache directory, keyed by its hash.
//! - Protocol: JSON lines. The host writes one request per job on the
//!   worker's stdin; the worker answers with progress lines and one `done`
//!   line on a private copy of its stdout (anything yt-dlp prints goes to
//!   stderr, which the host keeps the end of to explain a crash).
//! - Options: the user's yt-dlp options must be in [`SUPPORTED_OPTIONS`];
//!   the worker turns them into `YoutubeDL` params with yt-dlp's own CLI
//!   parser (`yt_dlp.parse_options`), so defaults and value syntax are those
//!   of the process runner. Anything else is refused with a message that
//!   names the option and points at the process runner.
//! - Failures: the worker reports the exception chain (type names with their
//!   modules, HTTP status and reason, errno); [`crate::classify::chain`]
//!   reads its signals and the one decision in [`crate::classify`] gives the
//!   kind, as for the process runner's stderr.
//! - Isolation: a fresh `YoutubeDL` per job; a deadline per job (the worker
//!   is killed and replaced); a worker that dies or grows beyond a memory
//!   bound (RSS from `/proc`) is replaced; dropping a job's future kills its
//!   worker; workers are recycled after a number of jobs. A broken worker
//!   always yields an outcome (a `host` failure with the reason).

pub mod options;
pub mod pool;
pub mod protocol;
pub mod python;
pub mod script;

pub use options::{SUPPORTED_OPTIONS, check_args};
pub use pool::{PoolOptions, WorkerPool, rss_bytes};
pub use python::{PYTHON_ENV_VAR, PythonSpec, find_python};
