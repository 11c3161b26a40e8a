//! Giving freed heap memory back to the operating system after a burst of allocations.
//!
//! Importing 100,000 keys allocates ~110 MiB that is freed when the import ends (the request
//! body, parsed and encrypted copies, database batches), but glibc's malloc keeps freed memory
//! of its arenas mapped: RSS stayed at 200 MiB where the live heap was 87 MiB (bench/README.md).
//! `malloc_trim` returns those pages; it is called once per finished admin task, never on the
//! request path.

/// Returns the free pages of every malloc arena to the OS (glibc only; a no-op elsewhere).
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; it takes no pointer
    // and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
