//! Downloading CIFAR-10 (native): the official python-version archive, streamed to disk with
//! progress reports and checked against its published MD5 before it is used.

use std::io::Read;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::fs_atomic::{PartialFile, WriteError};

/// The official archive of the python version.
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz";
/// Its published MD5.
pub const CIFAR10_MD5: &str = "c58f30108f718f92721af3b95e74349a";
/// The file name it is saved under.
pub const CIFAR10_FILE: &str = "cifar-10-python.tar.gz";

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("cannot download {url}: {reason}; check the network connection, or download it by hand")]
    Http { url: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Writing the downloaded file failed: the step, the file and the cause.
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(
        "the download of {url} is damaged (MD5 {found}, published {expected}); it was deleted, try again"
    )]
    Checksum {
        url: String,
        found: String,
        expected: String,
    },
}

/// Downloads `url` into `dir/file_name`, calling `progress(bytes so far, total if known)` as
/// it goes, and keeps it only if its MD5 is `md5`. An existing file with the right MD5 is
/// used as it is.
pub fn download_checked(
    url: &str,
    md5: &str,
    dir: &Path,
    file_name: &str,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<PathBuf, DownloadError> {
    let path = dir.join(file_name);
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| DownloadError::Io { path: p, source }
    };
    if path.is_file() && file_md5(&path).map_err(io(&path))? == md5 {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let http = |e: ureq::Error| DownloadError::Http {
        url: url.into(),
        reason: e.to_string(),
    };
    let mut response = ureq::get(url).call().map_err(http)?;
    let total = response.body().content_length();
    let mut reader = response.body_mut().as_reader();
    let mut file = PartialFile::create(&path)?;
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut done = 0u64;
    loop {
        let n = reader.read(&mut buffer).map_err(|e| DownloadError::Http {
            url: url.into(),
            reason: e.to_string(),
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n])?;
        done += n as u64;
        progress(done, total);
    }
    let found = hex(&hasher.finalize());
    if found != md5 {
        drop(file); // the partial download goes
        return Err(DownloadError::Checksum {
            url: url.into(),
            found,
            expected: md5.into(),
        });
    }
    file.commit()?;
    Ok(path)
}

/// Downloads CIFAR-10 (python version) into `dir`.
pub fn download_cifar10(
    dir: &Path,
    progress: impl FnMut(u64, Option<u64>),
) -> Result<PathBuf, DownloadError> {
    download_checked(CIFAR10_URL, CIFAR10_MD5, dir, CIFAR10_FILE, progress)
}

fn file_md5(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Md5::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
