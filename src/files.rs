//! Reading the files a person points the command line at (a policy, a credentials folder, a report, a state file),
//! bounded: a wrong path (a log, a disk image, `/dev/zero`) gets a clear error instead of filling the memory.

use std::io::Read;
use std::path::Path;

/// What a Kubernetes Secret or ConfigMap can hold, and so the most one of its entries (or a policy) can be.
pub const SECRET_BYTES: u64 = 1024 * 1024;

/// The most a run's JSON report or a state file may be: records and notices are bounded well below this.
pub const REPORT_BYTES: u64 = 64 * 1024 * 1024;

/// The file's bytes, or an error of kind `InvalidData` when it holds more than `limit` bytes (read no further).
pub fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "holds more than {limit} bytes, far more than such a file ever does: is it the right file?"
            ),
        ));
    }
    Ok(bytes)
}

/// [`read_at_most`], as UTF-8 text.
pub fn read_text_at_most(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_at_most(path, limit)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_at_the_limit_is_read_and_one_byte_more_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [b'a'; 10]).unwrap();
        assert_eq!(read_at_most(&path, 10).unwrap().len(), 10);
        let err = read_at_most(&path, 9).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("more than 9 bytes"), "{err}");
    }

    #[test]
    fn an_endless_device_is_refused_without_reading_it_all() {
        let err = read_at_most(Path::new("/dev/zero"), 4096).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn text_must_be_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(read_text_at_most(&path, 10).is_err());
        assert!(read_at_most(Path::new("/nonexistent/x"), 10).is_err());
    }
}
