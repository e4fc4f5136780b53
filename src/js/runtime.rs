//! The addon's tokio runtime: napi's default one, except that its threads (the workers
//! and the blocking pool: transfers, hashing, file I/O) run at a lower priority than the
//! JavaScript thread. When they keep every core busy, the event loop still gets a core
//! as soon as it wakes; measured on 2 cores during 20 MiB uploads, event-loop p99 went
//! from 4.6–4.9 ms to 4.0 ms (bench/transfer.js workers, threads reniced A/B).

use napi::bindgen_prelude::create_custom_tokio_runtime;

#[napi_derive::module_init]
fn init() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(below_this_thread())
        .build()
        .expect("tokio runtime");
    create_custom_tokio_runtime(runtime);
}

/// Sets each runtime thread to the calling (JavaScript) thread's nice value plus 5: a
/// third of a normal thread's share of a contended core. An absolute value, since
/// threads inherit the nice value of the thread that spawns them, and the blocking
/// pool's are spawned by workers. Linux keeps a nice value per thread, and `who = 0`
/// names the calling one. Best effort: a thread left at the normal priority only
/// competes as before.
#[cfg(target_os = "linux")]
fn below_this_thread() -> impl Fn() + Send + Sync + 'static {
    // SAFETY: getpriority and setpriority have no memory-safety preconditions; with
    // PRIO_PROCESS and who = 0 neither can fail.
    let target = (unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) } + 5).min(19);
    move || unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, target);
    }
}

/// Elsewhere the call would change the whole process, the JavaScript thread included.
#[cfg(not(target_os = "linux"))]
fn below_this_thread() -> impl Fn() + Send + Sync + 'static {
    || {}
}
