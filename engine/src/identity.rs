//! Which store a journal folder or a backup belongs to.
//!
//! A store gets a random id when it is first opened by a build that knows of ids (kept in
//! its catalog, so a backup's copy of the database carries it, and a store restored from
//! that backup, or a standby made from it, continues the same history under the same id).
//! The id is written beside the journal's segments, in a file [`ID_FILE`] of `journal/`
//! (and of `archive/journal/`, where `keep_journal` keeps checkpointed segments), and into
//! every backup's manifest.
//!
//! Opening a store whose journal folder names another store is refused before anything is
//! replayed; so are a standby following, a point-in-time restore replaying, and `journal
//! prune` keeping segments for, the journal or backup of another store. A folder or a
//! backup without an id (written before ids were kept) is taken as it is.

use std::path::Path;

use redb::ReadableTable;

use crate::error::{Error, Result};
use crate::layout::CATALOG;

/// The file in a journal folder that names the store it belongs to.
pub const ID_FILE: &str = "store-id";

/// The catalog key of the store's id.
const ID_KEY: &str = "meta/store_id";

/// Bytes of an id: 32 lowercase hex digits (128 bits).
const ID_LEN: usize = 32;

fn valid(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The store's id, made (and written in `txn`) when the catalog has none.
pub(crate) fn ensure(txn: &redb::WriteTransaction) -> Result<String> {
    let mut catalog = txn.open_table(CATALOG)?;
    let stored = catalog
        .get(ID_KEY)?
        .map(|g| String::from_utf8_lossy(g.value()).into_owned());
    match stored {
        Some(id) if valid(&id) => Ok(id),
        Some(_) => Err(Error::corruption("the catalog's store id is unreadable")),
        None => {
            let id = format!("{:032x}", fastrand::u128(..));
            catalog.insert(ID_KEY, id.as_bytes())?;
            Ok(id)
        }
    }
}

/// The store's id, if its catalog has one.
pub(crate) fn of_catalog(txn: &redb::ReadTransaction) -> Result<Option<String>> {
    let catalog = match txn.open_table(CATALOG) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(g) = catalog.get(ID_KEY)? else {
        return Ok(None);
    };
    let id = String::from_utf8_lossy(g.value()).into_owned();
    if valid(&id) {
        Ok(Some(id))
    } else {
        Err(Error::corruption("the catalog's store id is unreadable"))
    }
}

/// The id named in `folder`'s [`ID_FILE`], if it has one.
pub fn of_folder(folder: &Path) -> Result<Option<String>> {
    let path = folder.join(ID_FILE);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    if !meta.is_file() || meta.len() > 64 {
        return Err(Error::corruption(format!(
            "{} is not a store id file (a 32-digit hex id)",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let id = text.trim();
    if !valid(id) {
        return Err(Error::corruption(format!(
            "{} does not hold a store id (a 32-digit hex id)",
            path.display()
        )));
    }
    Ok(Some(id.to_owned()))
}

/// Refuses `folder` when it names a store other than `id`; `what` says what the folder is
/// to the caller, e.g. "the journal folder to follow".
pub fn check_folder(folder: &Path, id: Option<&str>, what: &str) -> Result<()> {
    let (Some(id), Some(theirs)) = (id, of_folder(folder)?) else {
        return Ok(());
    };
    if theirs == id {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "{what} {} belongs to store {theirs}, not to store {id}: it is another store's \
         journal; nothing was read from it",
        folder.display()
    )))
}

/// Marks `folder` (created if missing) as the journal folder of store `id`; refuses it when
/// it names another store.
pub(crate) fn claim_folder(folder: &Path, id: &str) -> Result<()> {
    check_folder(folder, Some(id), "journal folder")?;
    if of_folder(folder)?.is_some() {
        return Ok(());
    }
    std::fs::create_dir_all(folder)
        .map_err(|e| Error::io(format!("creating {}", folder.display()), e))?;
    // A claim killed before its rename left its temporary file: the store holds the folder.
    let _ = std::fs::remove_file(folder.join(format!(".{ID_FILE}.tmp")));
    crate::backup::files::write_atomic(&folder.join(ID_FILE), format!("{id}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_claimed_once_and_refused_to_another_store() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let folder = dir.path().join("journal");
        let (a, b) = (
            "0123456789abcdef0123456789abcdef",
            "fedcba9876543210fedcba9876543210",
        );
        assert_eq!(of_folder(&folder)?, None);
        check_folder(&folder, Some(a), "folder")?;
        claim_folder(&folder, a)?;
        assert_eq!(of_folder(&folder)?.as_deref(), Some(a));
        claim_folder(&folder, a)?;
        let err = claim_folder(&folder, b).map(|_| ()).unwrap_err();
        assert!(
            err.to_string().contains(a) && err.to_string().contains(b),
            "{err}"
        );
        check_folder(&folder, None, "folder")?;
        std::fs::write(folder.join(ID_FILE), "not an id").map_err(|e| Error::io("w", e))?;
        assert!(of_folder(&folder).is_err());
        Ok(())
    }
}
