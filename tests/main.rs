//! bootgate's integration tests, one module per topic, linked into one test
//! binary (`cargo test --test suite`) so that `support` and the
//! dependencies are compiled and linked once. Run one topic with
//! `cargo test --test suite <topic>::`; `scripts/test` runs each topic in
//! turn and prints how long it took.
//!
//! Tests share this process: anything process-wide (umask, environment,
//! working directory, signal dispositions) is set in the child that needs
//! it (`pre_exec`, `Command::env`), never in the test's own process.

mod support;

mod boot;
mod deb;
mod events;
mod gitcfg;
mod history_bounds;
mod image;
mod legacy_tls;
mod profiles;
mod scratch;
mod security;
mod server;
mod service;
mod takeover;

/// Cargo builds only what `Cargo.toml` declares (`autotests = false`): a
/// topic file in `tests/` that this file does not declare would never run.
#[test]
fn every_topic_file_is_part_of_the_suite() {
    let main = include_str!("main.rs");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(topic) = name.strip_suffix(".rs") else {
            continue;
        };
        if topic != "main" && !main.contains(&format!("\nmod {topic};\n")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "{missing:?} in tests/ but not declared in tests/main.rs: add `mod <topic>;`"
    );
}
