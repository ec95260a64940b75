//! The one place that releases the GIL, and the pool the work then runs on.
//!
//! Every long-running core call goes through `without_gil`: inputs have already been copied or
//! borrowed read-only by the wrapper, the closure runs pure Rust with the GIL released, and its
//! `CoreResult` is converted to a Python exception once, here.
//!
//! A Python thread may ask for its calls to run in the background (`use_background_pool`): on a
//! rayon pool of their own, whose threads the OS runs after everyone else's. Training builds the
//! served model beside its validation, which takes longer and is what the result waits for; on
//! one shared pool the served build's parallel stages queued ahead of the validation's and
//! stretched its build threefold. In the background the served build takes the cores the
//! validation leaves idle, and yields them when it wants them back.
use std::cell::Cell;
use std::sync::OnceLock;

use pyo3::prelude::*;

use crate::errors::CoreResult;

/// Nice value of the background pool's threads: weight 335 against 1,024 for a default thread,
/// so they get a quarter of a contended core and all of an idle one. Training at 200,000
/// households took 74 s at 0 (the pools sharing alike), 62-63 s at 4 to 6 and 69 s at 10 (where
/// the served build, starved, finished last).
const BACKGROUND_NICE: i32 = 5;

thread_local! {
    static IN_BACKGROUND: Cell<bool> = const { Cell::new(false) };
}

/// The background pool, as many threads as the shared one; None if it could not start (the
/// work then runs on the shared pool, as before).
static BACKGROUND: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();

pub fn without_gil<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    F: FnOnce() -> CoreResult<T> + Send,
    T: Send,
{
    let pool = if IN_BACKGROUND.get() { background_pool() } else { None };
    py.detach(|| match pool {
        Some(pool) => pool.install(work),
        None => work(),
    })
    .map_err(PyErr::from)
}

fn background_pool() -> Option<&'static rayon::ThreadPool> {
    BACKGROUND
        .get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(rayon::current_num_threads())
                .thread_name(|i| format!("omnix-background-{i}"))
                .start_handler(|_| lower_priority())
                .build()
                .ok()
        })
        .as_ref()
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // On Linux the nice value belongs to each thread (not to the process, as POSIX has it).
    // SAFETY: plain system calls on the calling thread's own id; a failure leaves it as it was.
    unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, BACKGROUND_NICE);
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// Whether the core work this thread starts runs on the background pool (a pool of its own, at
/// a lower scheduling priority) or on the shared one (the default).
#[pyfunction]
pub fn use_background_pool(on: bool) {
    IN_BACKGROUND.set(on);
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(use_background_pool, m)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's name and nice value.
    fn thread_name() -> (String, i32) {
        // SAFETY: plain system calls about the calling thread.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t) };
        (std::thread::current().name().unwrap_or_default().to_string(), nice)
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn background_work_runs_on_its_own_pool_and_only_for_the_thread_that_asked() {
        let on_pool = |background: bool| {
            std::thread::spawn(move || {
                IN_BACKGROUND.set(background);
                let pool = if IN_BACKGROUND.get() { background_pool() } else { None };
                let names = || rayon::join(thread_name, thread_name);
                match pool {
                    Some(pool) => pool.install(names),
                    None => names(),
                }
            })
            .join()
            .unwrap()
        };
        for (name, nice) in <[_; 2]>::from(on_pool(true)) {
            assert!(name.starts_with("omnix-background-"), "{name}");
            assert_eq!(nice, BACKGROUND_NICE);
        }
        for (name, _) in <[_; 2]>::from(on_pool(false)) {
            assert!(!name.starts_with("omnix-background-"), "{name}");
        }
    }
}
