#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tradestore_fuzz::check_journal_segment(data));
