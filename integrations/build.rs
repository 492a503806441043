// The integrations' migrations are compiled in by `sqlx::migrate!`; rebuild when one is added
// or changed.
fn main() {
    println!("cargo:rerun-if-changed=../migrations/integrations");
}
