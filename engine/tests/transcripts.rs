//! Transcript tests: each file in `testdata/` is a script of commands with the exact expected
//! output. Regenerate with `RINGRAFT_REGEN=1 cargo test -p ringraft --test transcripts` and
//! review the diff.

mod interaction;

use std::path::PathBuf;

#[test]
fn transcripts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        interaction::run_file(&f);
    }
}
