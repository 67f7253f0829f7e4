// Re-run when migrations change: `embed_migrations!` does not notice new folders.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
