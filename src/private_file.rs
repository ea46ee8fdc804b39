//! Files that hold private data (the log, the review file with message text, the
//! session key): created readable by this user only (0600), in directories
//! created 0700.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of a private file.
pub const FILE_MODE: u32 = 0o600;
/// Mode of a directory created for private files.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents with mode 0700. Directories that already
/// exist keep their mode: they may be shared ones (`/tmp`) the user chose.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Opens `path` for appending, creating it (and its directory) private. A file
/// that already exists is made 0600 too: it is ours, and older versions created
/// it readable by everyone.
pub fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        create_dir(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)?;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_0600_in_a_new_0700_directory_and_old_files_are_tightened() {
        let root = std::env::temp_dir().join(format!("secondme-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let path = root.join("a/b/secondme.log");
        open_append(&path).expect("open");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.join("a/b")), 0o700);
        assert_eq!(mode(&root.join("a")), 0o700);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        open_append(&path).expect("reopen");
        assert_eq!(mode(&path), 0o600);
        let _ = std::fs::remove_dir_all(&root);
    }
}
