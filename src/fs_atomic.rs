//! Writing a file so that a crash, a kill or a power cut at any moment leaves either the old
//! file or the new one whole, never a mix (native). The bytes go to a temporary file beside
//! the target (its name with `.partial` appended), are flushed to disk, and the temporary file
//! is renamed over the target; the folder is then flushed too, so that the rename itself
//! survives a power cut.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A step of an atomic write that failed: what it did ("write", "create the folder of", …),
/// the file being written (the target, whose old contents are intact), and the system's error.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct WriteError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A file being written beside its target; it takes the target's place only when committed.
/// Until then the target keeps its old contents (or stays absent); one dropped uncommitted (a
/// failed write, a failed check) is removed.
pub struct PartialFile {
    /// Open until the commit renames it.
    file: Option<File>,
    partial: PathBuf,
    target: PathBuf,
}

impl PartialFile {
    /// Creates the temporary file for `target` (and the target's folder if it is missing).
    pub fn create(target: &Path) -> Result<Self, WriteError> {
        if let Some(folder) = target.parent().filter(|f| !f.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(fail("create the folder of", target))?;
        }
        let partial = partial_path(target);
        let file = File::create(&partial).map_err(fail("write", target))?;
        Ok(Self {
            file: Some(file),
            partial,
            target: target.to_path_buf(),
        })
    }

    /// Appends `bytes` to the temporary file.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        let file = self.file.as_mut().expect("open until committed");
        file.write_all(bytes).map_err(fail("write", &self.target))
    }

    /// Flushes the temporary file to disk, renames it over the target, and flushes the folder.
    /// Once the rename is done the target holds the new contents: a folder that cannot be
    /// flushed then is logged, not reported as a failed write.
    pub fn commit(mut self) -> Result<(), WriteError> {
        let file = self.file.take().expect("open until committed");
        file.sync_all().map_err(fail("write", &self.target))?;
        drop(file);
        std::fs::rename(&self.partial, &self.target)
            .map_err(fail("move the written file to", &self.target))?;
        if let Err(e) = sync_folder(&self.target) {
            log::warn!("{}", fail("flush the folder of", &self.target)(e));
        }
        Ok(())
    }
}

impl Drop for PartialFile {
    /// An uncommitted temporary file is removed (after a commit it no longer exists).
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Writes `bytes` to `path` atomically (see the module's description).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let mut file = PartialFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// The temporary file of `target`: its name with `.partial` appended.
fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn fail(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError { action, path, source }
}

/// Flushes the folder holding `target` to disk, so that a rename into it is durable. File
/// systems that cannot flush a folder say so with `InvalidInput` or `Unsupported`: the rename
/// stands there as well as the system allows.
#[cfg(unix)]
fn sync_folder(target: &Path) -> std::io::Result<()> {
    let folder = target
        .parent()
        .filter(|f| !f.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match File::open(folder).and_then(|f| f.sync_all()) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        result => result,
    }
}

/// Elsewhere a folder cannot be opened as a file to flush it: the rename is as durable as the
/// system makes it.
#[cfg(not(unix))]
fn sync_folder(_target: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("resnet-wgpu-fs-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temporary_file() {
        let dir = folder("replace");
        let path = dir.join("nested").join("file.bin");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert!(!partial_path(&path).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_dropped_uncommitted_leaves_the_old_file() {
        let dir = folder("discard");
        let path = dir.join("file.bin");
        write_atomically(&path, b"old").unwrap();
        let mut file = PartialFile::create(&path).unwrap();
        file.write_all(b"new, half").unwrap();
        assert!(partial_path(&path).exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        drop(file);
        assert!(!partial_path(&path).exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_step_names_the_file_and_what_was_done() {
        let dir = folder("fail");
        std::fs::create_dir_all(&dir).unwrap();
        // A file where the folder should be.
        let blocker = dir.join("blocker");
        std::fs::write(&blocker, b"").unwrap();
        let e = write_atomically(&blocker.join("file.bin"), b"x").unwrap_err();
        assert_eq!(e.action, "create the folder of");
        let text = e.to_string();
        assert!(
            text.starts_with("cannot create the folder of ") && text.contains("file.bin"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
