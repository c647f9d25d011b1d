//! The properties the fuzz targets check. Each function is the whole body of one target.

use tradestore::backup::Manifest;
use tradestore::migrate::Migration;
use tradestore::{archive, dump, journal, keys};
use tradestore_schema::{TableId, codec};

/// Record codec: the first byte chooses the table, the rest is decoded as one of its stored
/// records. Decoding never panics, and a record that decodes encodes to bytes that decode to
/// the same record. (The bytes need not be equal: postcard accepts over-long varints.)
pub fn check_record_decoder(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let table = table_for(selector);
    let Ok(record) = codec::decode_any(table, bytes) else {
        return;
    };
    assert_eq!(record.table(), table, "decoded into another table");
    let encoded = codec::encode_any(&record);
    match codec::decode_any(table, &encoded) {
        Ok(again) => assert_eq!(
            again, record,
            "record changed in an encode/decode round trip"
        ),
        Err(e) => panic!("re-encoded {record:?} does not decode: {e}"),
    }
}

/// The table a selector byte names: 1..=6 are the tables' on-disk ids, every other byte
/// wraps onto them so that no input is wasted.
fn table_for(selector: u8) -> TableId {
    let id = selector.wrapping_sub(1) % TableId::ALL.len() as u8 + 1;
    match TableId::from_u8(id) {
        Some(t) => t,
        None => unreachable!("table ids are 1..={}", TableId::ALL.len()),
    }
}

/// Dump lines: UTF-8 input is parsed as one line of a dump. Parsing never panics, and a line
/// that parses formats to a line that parses to the same record and formats identically
/// (dumps are byte-for-byte reproducible).
pub fn check_dump_line(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(record) = dump::parse_line(line) else {
        return;
    };
    let formatted = dump::format_line(&record);
    match dump::parse_line(&formatted) {
        Ok(again) => {
            assert_eq!(again, record, "record changed in a format/parse round trip");
            assert_eq!(
                dump::format_line(&again),
                formatted,
                "formatting is not stable"
            );
        }
        Err(e) => panic!("formatted line {formatted:?} does not parse: {e}"),
    }
}

/// Keys: decoding arbitrary bytes never panics, the encoding is canonical (a key that decodes
/// is exactly the encoding of its values), and the length of its values as measured without
/// decoding is the whole key.
pub fn check_key_decoder(data: &[u8]) {
    let Ok(values) = keys::decode(data) else {
        return;
    };
    assert_eq!(
        keys::encode(&values),
        data,
        "key {values:?} has another encoding"
    );
    match keys::len_of_values(data, values.len()) {
        Ok(len) => assert_eq!(len, data.len(), "len_of_values disagrees with decode"),
        Err(e) => panic!("len_of_values rejects a key that decodes to {values:?}: {e}"),
    }
}

/// Archive segment files: decoding never panics (nor allocates past the bound on a
/// segment's body), and rows that decode encode to a file that decodes to the same rows.
pub fn check_archive_segment(data: &[u8]) {
    let Ok(decoded) = archive::decode_segment(data) else {
        return;
    };
    let encoded = match archive::encode_segment(&decoded.rows) {
        Ok(bytes) => bytes,
        Err(e) => panic!("decoded rows do not encode: {e}"),
    };
    match archive::decode_segment(&encoded) {
        Ok(again) => assert_eq!(
            again, decoded,
            "rows changed in an encode/decode round trip"
        ),
        Err(e) => panic!("a re-encoded segment does not decode: {e}"),
    }
}

/// Backup manifests: UTF-8 input is parsed and validated as `backup.json`. Parsing never
/// panics, and a manifest that validates is written out as text that parses to the same
/// manifest.
pub fn check_backup_manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = Manifest::parse(text) else {
        return;
    };
    let json = match manifest.to_json() {
        Ok(json) => json,
        Err(e) => panic!("a valid manifest does not encode: {e}"),
    };
    let again = std::str::from_utf8(&json)
        .map_err(|e| e.to_string())
        .and_then(|t| Manifest::parse(t).map_err(|e| e.to_string()));
    match again {
        Ok(again) => assert_eq!(again, manifest, "manifest changed in a round trip"),
        Err(e) => panic!("a written manifest does not parse: {e}"),
    }
}

/// Migration files: any bytes are read as a migration file (`migrate::Migration::parse`).
/// Parsing never panics; a file that parses obeys the static rules (a version of at least 1,
/// at least one step, no dependency on itself), carries a `sha256:` checksum of 64 hex
/// digits, and parses again to the same migration.
pub fn check_migration_file(data: &[u8]) {
    let path = std::path::Path::new("fuzz.toml");
    let Ok(m) = Migration::parse(path, data) else {
        return;
    };
    assert!(m.version >= 1, "version {} was accepted", m.version);
    assert!(!m.steps.is_empty(), "a migration with no step was accepted");
    assert!(
        !m.depends_on.contains(&m.version),
        "a migration that depends on itself was accepted"
    );
    let hex = m.checksum.strip_prefix("sha256:").unwrap_or("");
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "checksum {}",
        m.checksum
    );
    match Migration::parse(path, data) {
        Ok(again) => assert_eq!(again, m, "the same bytes parsed differently"),
        Err(e) => panic!("the same bytes failed the second time: {e}"),
    }
}

/// Journal segment files (`journal/*.wal`, `archive/journal/*.wal`), as `tradestore journal`,
/// `journal prune`, point-in-time recovery and a standby read them: `journal::summarize_bytes`
/// never panics, and its summary agrees with itself: records numbered 1 ..= `records`,
/// untimed ones among them, commit times exactly when a record has one, used bytes within
/// the file and only zeros after them when nothing was wrong, and the used bytes alone
/// summarize the same.
pub fn check_journal_segment(data: &[u8]) {
    let s = journal::summarize_bytes(std::path::PathBuf::from("fuzz.wal"), 1, data);
    assert_eq!(s.bytes, data.len() as u64, "file size");
    assert!(s.used <= s.bytes, "{} bytes used of {}", s.used, s.bytes);
    assert_eq!(
        s.last_seq,
        (s.records > 0).then_some(s.records),
        "sequence numbers"
    );
    assert!(s.untimed <= s.records, "more untimed records than records");
    let timed = s.records > s.untimed;
    assert_eq!(s.first_commit_ns.is_some(), timed, "first commit time");
    assert_eq!(s.last_commit_ns.is_some(), timed, "last commit time");
    let used = usize::try_from(s.used).unwrap_or(usize::MAX);
    if s.problem.is_none() {
        assert!(
            data.get(used..)
                .is_some_and(|rest| rest.iter().all(|b| *b == 0)),
            "non-zero bytes after the records without a problem"
        );
    }
    let again = journal::summarize_bytes(s.path.clone(), 1, &data[..used]);
    assert_eq!(
        (
            again.records,
            again.untimed,
            again.first_commit_ns,
            again.last_commit_ns
        ),
        (s.records, s.untimed, s.first_commit_ns, s.last_commit_ns),
        "the used bytes alone summarize differently"
    );
    assert!(
        again.problem.is_none(),
        "whole records read as {:?}",
        again.problem
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_is_the_table_id_and_wraps() {
        for t in TableId::ALL {
            assert_eq!(table_for(t as u8), t);
        }
        assert_eq!(table_for(7), TableId::Instruments);
        assert_eq!(table_for(0), TableId::Trades);
    }
}
