//! The jsonl channel: each notification appended to a file as one line of JSON (the
//! webhook payload), the file created if missing.

use std::io::Write;
use std::path::Path;

use super::notification::Notification;

/// Appends the notification as one line.
pub(crate) fn append(path: &Path, n: &Notification) -> Result<(), String> {
    let mut line = n.to_json();
    line.push('\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| format!("jsonl {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::alerts::notification::NotificationStatus;

    #[test]
    fn writes_parseable_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let n = Notification::new("ops", "route 0:{}".into(), Default::default(), Vec::new());
        append(&path, &n).unwrap();
        append(&path, &n).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Notification> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].receiver, "ops");
        assert_eq!(lines[1].status, NotificationStatus::Resolved);
        let missing = dir.path().join("no/such/dir/a.jsonl");
        assert!(append(&missing, &n).is_err_and(|e| e.contains("jsonl")));
    }
}
