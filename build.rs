//! Tells cargo what the binary embeds besides Rust sources, so any order of building works.
//!
//! - `migrations/`: `embed_migrations!` reads the folders at compile time.
//! - `web-admin/dist/`: release builds embed the admin UI (`src/http/spa.rs`). Without this line,
//!   `cargo build` → `npm run build` → `cargo build` kept serving the "build the UI" page.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    // Cargo reruns a build script on every build while a watched path is missing; an empty `dist`
    // (git-ignored, what `npm run build` fills) keeps builds without the UI incremental, and its
    // contents changing later still triggers the rebuild that embeds them.
    let dist = std::path::Path::new("web-admin/dist");
    if !dist.exists() {
        if let Err(err) = std::fs::create_dir_all(dist) {
            println!("cargo:warning=could not create {}: {err}", dist.display());
        }
    }
    println!("cargo:rerun-if-changed=web-admin/dist");
}
