//! `backup.json`: what a backup holds. It is written last, so a backup without one is
//! unfinished; it is read back with a bounded size and validated field by field, since a
//! backup is a directory anyone may have edited.
//!
//! Checksums are CRC32C. A table's checksum covers its entries in key order, each as the
//! key's length (u32, big-endian), the key's bytes, the value's length and the value's bytes
//! (the bytes redb stores). The backup's `crc32c` covers every table in name order, each as
//! its name's length and bytes, its row count (u64, big-endian) and its checksum. A file's
//! checksum covers its bytes.

use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The manifest's file name inside a backup.
pub const MANIFEST_FILE: &str = "backup.json";
/// What the `format` field says.
const FORMAT: &str = "tradestore-backup";
/// The manifest version this build writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// A manifest larger than this is refused unread (one entry per file is ~100 bytes).
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// The contents of `backup.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `tradestore-backup`.
    pub format: String,
    /// The manifest's version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// When the backup's snapshot was taken, ns since the Unix epoch.
    pub created_ns: u64,
    /// The same time as RFC 3339 text, UTC.
    pub created: String,
    /// The last transaction the backup holds: it holds exactly transactions 1 ..= this.
    pub applied_seq: u64,
    /// Every redb table of the snapshot, by name.
    pub tables: Vec<TableSum>,
    /// CRC32C over every table's name, row count and checksum, in name order.
    pub crc32c: u32,
    /// Every file of the backup besides this manifest, by path relative to the backup.
    pub files: Vec<FileSum>,
    /// The id of the store it was taken of ([`crate::identity`]): a point-in-time restore
    /// or `journal prune` refuses another store's journal for it. Absent in backups taken
    /// before stores had ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
}

/// One redb table of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSum {
    /// The redb table's name (`t.trades`, `i.trades_by_account`, `catalog`, ...).
    pub name: String,
    /// Its entries.
    pub rows: u64,
    /// CRC32C of its keys and values in key order.
    pub crc32c: u32,
}

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSum {
    /// Relative to the backup's directory, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// CRC32C of its bytes.
    pub crc32c: u32,
}

impl Manifest {
    pub(crate) fn new(created_ns: u64, applied_seq: u64, tables: Vec<TableSum>) -> Manifest {
        let created = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(created_ns),
        )
        .to_string();
        Manifest {
            format: FORMAT.to_owned(),
            version: MANIFEST_VERSION,
            created_ns,
            created,
            applied_seq,
            crc32c: total_crc(&tables),
            tables,
            files: Vec::new(),
            store_id: None,
        }
    }

    /// Rows of every table together.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Bytes of every file together.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Reads and validates the manifest of the backup in `dir`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let text = read_bounded(&path)?;
        Manifest::parse(&text).map_err(|e| e.context(path.display()))
    }

    /// Parses and validates a manifest's text (what [`Manifest::read`] does after reading
    /// the file).
    pub fn parse(text: &str) -> Result<Manifest> {
        let manifest: Manifest = serde_json::from_str(text)
            .map_err(|e| Error::corruption(format!("not a valid backup manifest: {e}")))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks everything that can be checked without the backup's other files.
    fn validate(&self) -> Result<()> {
        if self.format != FORMAT {
            return Err(Error::corruption(format!(
                "format is {:?}, not {FORMAT:?}: not a tradestore backup",
                self.format
            )));
        }
        if self.version != MANIFEST_VERSION {
            return Err(Error::corruption(format!(
                "manifest version {} is not {MANIFEST_VERSION}, the one this build reads",
                self.version
            )));
        }
        // `created` is shown to people: it must be what `created_ns` says, not free text
        // (which could hold terminal controls or contradict the time restores check).
        let expected = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(self.created_ns),
        )
        .to_string();
        if self.created != expected {
            return Err(Error::corruption(format!(
                "created is {:?}, but created_ns {} is {expected}",
                self.created.chars().take(64).collect::<String>(),
                self.created_ns
            )));
        }
        if self.tables.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(Error::corruption(
                "tables are not listed once each in name order",
            ));
        }
        if total_crc(&self.tables) != self.crc32c {
            return Err(Error::corruption(
                "crc32c does not match the listed tables' names, rows and checksums",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &self.files {
            check_file_path(&f.path)?;
            if !seen.insert(f.path.as_str()) {
                return Err(Error::corruption(format!(
                    "file {:?} is listed twice",
                    f.path
                )));
            }
        }
        if !seen.contains(crate::DB_FILE) {
            return Err(Error::corruption(format!(
                "the files do not include {}",
                crate::DB_FILE
            )));
        }
        Ok(())
    }

    /// The manifest as written to disk.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let mut out = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::invalid(format!("encoding the backup manifest: {e}")))?;
        out.push(b'\n');
        Ok(out)
    }
}

/// The paths a backup may hold: the redb file, the two configuration files, and files
/// under `archive/` other than the archived journal. Nothing else, so that a hostile
/// manifest can name nothing outside the backup (or the store it is restored to).
fn check_file_path(path: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::corruption(format!(
            "file path {path:?} is refused: {why}"
        )))
    };
    if path.contains('\\') || path.contains('\0') {
        return bad("it holds a backslash or a NUL");
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return bad("it must be relative, without empty, `.` or `..` parts");
    }
    if Path::new(path)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return bad("it must be relative, without empty, `.` or `..` parts");
    }
    match parts.as_slice() {
        [one] if [crate::DB_FILE, "tradestore.toml", "alerts.toml"].contains(one) => Ok(()),
        ["archive", "journal", ..] => bad("the archived journal is not part of a backup"),
        ["archive", _, ..] => Ok(()),
        _ => bad("a backup holds only tradestore.redb, tradestore.toml, alerts.toml and archive/"),
    }
}

/// The backup's checksum over its tables (see the module's documentation).
pub(crate) fn total_crc(tables: &[TableSum]) -> u32 {
    let mut crc = 0;
    for t in tables {
        crc = crc32c::crc32c_append(crc, &len_u32(t.name.len()).to_be_bytes());
        crc = crc32c::crc32c_append(crc, t.name.as_bytes());
        crc = crc32c::crc32c_append(crc, &t.rows.to_be_bytes());
        crc = crc32c::crc32c_append(crc, &t.crc32c.to_be_bytes());
    }
    crc
}

/// A length as u32 for checksums; longer than redb allows a key or value is impossible.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Accumulates one table's row count and checksum.
pub(crate) struct TableSummer {
    rows: u64,
    crc: u32,
}

impl TableSummer {
    pub(crate) fn new() -> TableSummer {
        TableSummer { rows: 0, crc: 0 }
    }

    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) {
        self.rows += 1;
        self.crc = crc32c::crc32c_append(self.crc, &len_u32(key.len()).to_be_bytes());
        self.crc = crc32c::crc32c_append(self.crc, key);
        self.crc = crc32c::crc32c_append(self.crc, &len_u32(value.len()).to_be_bytes());
        self.crc = crc32c::crc32c_append(self.crc, value);
    }

    pub(crate) fn finish(self, name: &str) -> TableSum {
        TableSum {
            name: name.to_owned(),
            rows: self.rows,
            crc32c: self.crc,
        }
    }
}

/// Reads a manifest: a regular file (not a link, FIFO or device) of at most
/// [`MAX_MANIFEST_BYTES`], in UTF-8.
fn read_bounded(path: &Path) -> Result<String> {
    use std::io::Read;
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::not_found(format!(
                "{shown} does not exist: not a backup, or an unfinished one"
            )));
        }
        Err(e) => return Err(Error::io(format!("reading {shown}"), e)),
    };
    if !meta.is_file() {
        return Err(Error::corruption(format!(
            "{shown} is not a regular file (a link, directory or device)"
        )));
    }
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(Error::corruption(format!(
            "{shown} is {} bytes, over the {} MiB a manifest may have",
            meta.len(),
            MAX_MANIFEST_BYTES >> 20
        )));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(format!("reading {shown}"), e))?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("reading {shown}"), e))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(Error::corruption(format!(
            "{shown} grew past {} MiB while read",
            MAX_MANIFEST_BYTES >> 20
        )));
    }
    String::from_utf8(bytes)
        .map_err(|e| Error::corruption(format!("{shown} is not UTF-8 text: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let mut t = TableSummer::new();
        t.add(b"k", b"v");
        let mut m = Manifest::new(1_700_000_000_000_000_000, 7, vec![t.finish("t.accounts")]);
        m.files.push(FileSum {
            path: crate::DB_FILE.to_owned(),
            bytes: 10,
            crc32c: 1,
        });
        m
    }

    #[test]
    fn a_written_manifest_reads_back() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let m = sample();
        std::fs::write(dir.path().join(MANIFEST_FILE), m.to_json()?)
            .map_err(|e| Error::io("write", e))?;
        assert_eq!(Manifest::read(dir.path())?, m);
        assert_eq!(m.created, "2023-11-14T22:13:20Z");
        Ok(())
    }

    #[test]
    fn hostile_paths_and_inconsistent_fields_are_refused() {
        for path in [
            "../x",
            "/etc/passwd",
            "archive/../../x",
            "archive//x",
            "archive/./x",
            "archive/journal/00000001.seg",
            "journal/00000001.seg",
            "backup.json",
            "archive",
            "archive\\x",
        ] {
            let mut m = sample();
            m.files.push(FileSum {
                path: path.to_owned(),
                bytes: 1,
                crc32c: 0,
            });
            let err = m.validate().err();
            assert!(
                err.as_ref()
                    .is_some_and(|e| e.kind() == crate::ErrorKind::Corruption),
                "{path}: {err:?}"
            );
        }
        let mut m = sample();
        m.tables[0].rows += 1;
        assert!(m.validate().is_err(), "rows changed, crc32c not");
        let mut m = sample();
        m.files.clear();
        assert!(m.validate().is_err(), "no redb file");
        let mut m = sample();
        m.files.push(m.files[0].clone());
        assert!(m.validate().is_err(), "listed twice");
        let mut m = sample();
        m.version = 2;
        assert!(m.validate().is_err(), "unknown version");
        for created in ["2023-11-14T22:13:21Z", "\u{202e}2023-11-14T22:13:20Z", ""] {
            let mut m = sample();
            m.created = created.to_owned();
            assert!(m.validate().is_err(), "created {created:?}");
        }
        let mut ok = sample();
        ok.files.push(FileSum {
            path: "archive/trades/2026-01-01.zst".to_owned(),
            bytes: 1,
            crc32c: 0,
        });
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn unknown_fields_and_oversized_manifests_are_refused() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join(MANIFEST_FILE);
        let mut value: serde_json::Value = serde_json::from_slice(&sample().to_json()?)
            .map_err(|e| Error::invalid(e.to_string()))?;
        value["extra"] = serde_json::json!(1);
        std::fs::write(&path, value.to_string()).map_err(|e| Error::io("write", e))?;
        let err = Manifest::read(dir.path()).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("extra")),
            "{err:?}"
        );
        let file = std::fs::File::create(&path).map_err(|e| Error::io("create", e))?;
        file.set_len(MAX_MANIFEST_BYTES + 1)
            .map_err(|e| Error::io("set_len", e))?;
        let err = Manifest::read(dir.path()).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("over the 64 MiB")),
            "{err:?}"
        );
        Ok(())
    }
}
