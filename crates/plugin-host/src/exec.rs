//! Running a sync plugin's calls where WASI's sync host functions can run.
//!
//! wasmtime-wasi's sync bindings (the fast path's linker) run each host
//! call that does I/O (a file, a stream) through `Handle::block_on`, which
//! panics on a thread that is inside an async runtime. So a caller inside a
//! runtime (the backend's task in [`crate::BackendHandle`], the conformance
//! kit, a test) gets each call of a sync plugin moved where that is allowed
//! by [`run_sync`].

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

/// Runs `f` where a blocking `Handle::block_on` is allowed: right here when
/// this thread is not in a runtime; through `block_in_place` on a
/// multi-thread runtime's worker; on a short-lived thread otherwise (a
/// current-thread runtime).
pub fn run_sync<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match tokio::runtime::Handle::try_current() {
        Err(_) => f(),
        Ok(h) => match h.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
            _ => std::thread::scope(|s| {
                s.spawn(f)
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            }),
        },
    }
}

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `fut` to its end on this thread (outside any async runtime).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}
