//! Fuzz checks for tradestore's decoders of untrusted bytes: stored records, dump lines,
//! keys, archive segment files, journal segment files, backup manifests and migration files. Each check takes arbitrary bytes, must never panic on bad input, and asserts that
//! whatever decodes survives a round trip; it panics only when it finds a bug.
//!
//! The checks are plain functions so that the libFuzzer targets in `fuzz_targets/` (nightly,
//! `cargo fuzz`) and the corpus test in `tests/corpus.rs` (stable, `cargo test`) run the
//! same code.
//!
//! ```
//! use tradestore_fuzz::{check_dump_line, check_key_decoder, check_record_decoder};
//!
//! check_key_decoder(&[0x01, 0, 0, 0, 0, 0, 0, 0, 42]); // the key of id 42
//! check_key_decoder(&[0x03, b'a']); // unterminated text: an error, not a panic
//! check_dump_line(br#"{"table":"accounts","record":{"id":1,"name":"a","status":"active"}}"#);
//! check_record_decoder(&[4, 2, 0]); // a trades record of an unknown version
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod checks;

pub use checks::{
    check_archive_segment, check_backup_manifest, check_dump_line, check_journal_segment,
    check_key_decoder, check_migration_file, check_record_decoder,
};
