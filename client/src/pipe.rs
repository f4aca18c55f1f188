//! Output to a closed pipe: `client state 1 | head` and `bench check h.jsonl
//! | head` must end quietly when the reader goes, as shell tools do, not
//! panic in `println!`.

/// Lets the process end silently on a write to a closed pipe (the default
/// signal action, which the Rust runtime turns off). Sockets are not
/// affected: the standard library sends on them with `MSG_NOSIGNAL`, so a
/// peer that goes away is still an error the caller handles.
pub fn end_quietly_on_closed_pipe() {
    // SAFETY: restoring a signal's default action is async-signal-safe and
    // happens at start, before any thread is spawned.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
