//! CIFAR-10 readers for both official layouts, from a folder or from the downloaded archive.
//!
//! - Binary version (`cifar-10-batches-bin/`, archive `cifar-10-binary.tar.gz`):
//!   `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`, each a run of 3,073-byte
//!   records (1 label byte 0..9, then 3,072 pixel bytes: 1,024 R, 1,024 G, 1,024 B, 32×32
//!   row-major), any whole number of them; `batches.meta.txt` lists the class names, one a line.
//! - Python version (`cifar-10-batches-py/`, archive `cifar-10-python.tar.gz`):
//!   `data_batch_1` … `data_batch_5` and `test_batch`, each a pickled dict with `b"data"` (a
//!   numpy uint8 array [N, 3072], the same pixel order) and `b"labels"` (a list of N ints);
//!   `batches.meta` is a pickled dict with `b"label_names"`. Read by the safe reader in
//!   [`super::pickle`], which never runs code.
//!
//! The training set is every `data_batch_N` present (N = 1, 2, …; at least one), in order;
//! the test set is `test_batch`. Archives are read in memory (gzip + tar), never extracted.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::pickle::{self, Value};
use super::{
    CIFAR10_CLASSES, Cifar10, DataError, Dataset, IMAGE_BYTES, NUM_CLASSES, RECORD_BYTES, thousands,
};

/// Sub-folders and archives looked for inside a folder that is not itself a batch folder,
/// in order of preference (the binary layout reads faster).
const SUBFOLDERS: [&str; 2] = ["cifar-10-batches-bin", "cifar-10-batches-py"];
const ARCHIVES: [&str; 2] = ["cifar-10-binary.tar.gz", "cifar-10-python.tar.gz"];

/// The two layouts and their file names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Binary,
    Python,
}

impl Layout {
    fn train_name(self, n: usize) -> String {
        match self {
            Layout::Binary => format!("data_batch_{n}.bin"),
            Layout::Python => format!("data_batch_{n}"),
        }
    }
    fn test_name(self) -> &'static str {
        match self {
            Layout::Binary => "test_batch.bin",
            Layout::Python => "test_batch",
        }
    }
    fn meta_name(self) -> &'static str {
        match self {
            Layout::Binary => "batches.meta.txt",
            Layout::Python => "batches.meta",
        }
    }
}

/// Whether `name` (a file name without folders) is one of the files a loader reads.
fn is_cifar_file(name: &str) -> bool {
    let stem = name.strip_suffix(".bin").unwrap_or(name);
    let numbered = stem
        .strip_prefix("data_batch_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    numbered || stem == "test_batch" || name == "batches.meta" || name == "batches.meta.txt"
}

/// Where the batch files come from.
enum Source {
    /// A folder on disk holding the batch files themselves.
    Dir(PathBuf),
    /// Files already in memory (an archive's entries or dropped files), by file name; `name`
    /// says where they came from.
    Memory {
        name: String,
        files: HashMap<String, Vec<u8>>,
    },
}

impl Source {
    /// What to call `file` in messages.
    fn label(&self, file: &str) -> String {
        match self {
            Source::Dir(dir) => dir.join(file).display().to_string(),
            Source::Memory { name, .. } => format!("{name}: {file}"),
        }
    }
    fn location(&self) -> String {
        match self {
            Source::Dir(dir) => dir.display().to_string(),
            Source::Memory { name, .. } => name.clone(),
        }
    }
    fn has(&self, file: &str) -> bool {
        match self {
            Source::Dir(dir) => dir.join(file).is_file(),
            Source::Memory { files, .. } => files.contains_key(file),
        }
    }
    /// The bytes of `file` (which must exist).
    fn read(&self, file: &str) -> Result<Cow<'_, [u8]>, DataError> {
        match self {
            Source::Dir(dir) => Ok(Cow::Owned(read_file(&dir.join(file), MAX_BATCH_FILE_BYTES)?)),
            Source::Memory { files, .. } => Ok(Cow::Borrowed(&files[file])),
        }
    }
    /// The layout whose training batches are present, if any.
    fn layout(&self) -> Option<Layout> {
        [Layout::Binary, Layout::Python]
            .into_iter()
            .find(|&l| !self.train_batches(l).is_empty())
    }
    /// The names of the training batches present: `data_batch_1` … `data_batch_5`, and any
    /// further consecutive numbers.
    fn train_batches(&self, layout: Layout) -> Vec<String> {
        let mut names = Vec::new();
        for n in 1.. {
            let name = layout.train_name(n);
            if self.has(&name) {
                names.push(name);
            } else if n >= 5 {
                break;
            }
        }
        names
    }
}

/// The largest CIFAR-10 file: a python batch of 10,000 images is 31,035,704 bytes, a binary
/// one 30,730,000; anything past this bound is not CIFAR-10 and is not read.
pub const MAX_BATCH_FILE_BYTES: u64 = 40 << 20;
/// The largest archive read: the downloads are 163 MB (python) and 162 MB (binary).
pub const MAX_ARCHIVE_BYTES: u64 = 256 << 20;

/// Reads a whole file of at most `limit` bytes; a larger one is refused before any is read.
fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.display().to_string(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > limit {
        return Err(DataError::TooLarge {
            file: path.display().to_string(),
            size,
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(DataError::TooLarge {
            file: path.display().to_string(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Loads CIFAR-10 from `path`: a folder holding the batches (either layout), a folder holding
/// `cifar-10-batches-bin/`, `cifar-10-batches-py/` or one of the downloaded archives, or an
/// archive (`.tar.gz`, or plain `.tar`) itself. A path to one batch file loads its folder.
pub fn load_cifar10(path: impl AsRef<Path>) -> Result<Cifar10, DataError> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|source| DataError::Io {
        path: path.display().to_string(),
        source,
    })?;
    if meta.is_file() {
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if is_cifar_file(file_name) {
            let dir = path.parent().unwrap_or(Path::new("."));
            return load_source(&Source::Dir(dir.to_path_buf()));
        }
        let bytes = read_file(path, MAX_ARCHIVE_BYTES)?;
        return load_cifar10_archive(&path.display().to_string(), &bytes);
    }
    let dir = Source::Dir(path.to_path_buf());
    if dir.layout().is_some() {
        return load_source(&dir);
    }
    for sub in SUBFOLDERS {
        let s = Source::Dir(path.join(sub));
        if s.layout().is_some() {
            return load_source(&s);
        }
    }
    for archive in ARCHIVES {
        let p = path.join(archive);
        if p.is_file() {
            let bytes = read_file(&p, MAX_ARCHIVE_BYTES)?;
            return load_cifar10_archive(&p.display().to_string(), &bytes);
        }
    }
    Err(DataError::NoBatches {
        path: path.display().to_string(),
    })
}

/// Loads CIFAR-10 from the bytes of a downloaded archive (`cifar-10-binary.tar.gz` or
/// `cifar-10-python.tar.gz`; a plain `.tar` also works), in memory. `name` names the archive
/// in messages.
pub fn load_cifar10_archive(name: &str, bytes: &[u8]) -> Result<Cifar10, DataError> {
    let files = read_archive(name, bytes)?;
    load_source(&Source::Memory {
        name: name.to_string(),
        files,
    })
}

/// Loads CIFAR-10 from files given by name and content (for example dropped in a browser):
/// either one archive, or the batch files themselves (folders in the names are ignored).
pub fn load_cifar10_files(files: Vec<(String, Vec<u8>)>) -> Result<Cifar10, DataError> {
    if let [(name, bytes)] = files.as_slice() {
        let base = base_name(name);
        if !is_cifar_file(base) {
            return load_cifar10_archive(name, bytes);
        }
    }
    let name = match files.as_slice() {
        [] => "the dropped files".to_string(),
        [(first, _), ..] => format!("the files given ({first}, …)"),
    };
    let files = files
        .into_iter()
        .filter_map(|(n, b)| {
            let base = base_name(&n).to_string();
            is_cifar_file(&base).then_some((base, b))
        })
        .collect();
    load_source(&Source::Memory { name, files })
}

/// The last component of a path written with `/` or `\`.
fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// The CIFAR files inside a `.tar.gz` (or `.tar`), by file name.
fn read_archive(name: &str, bytes: &[u8]) -> Result<HashMap<String, Vec<u8>>, DataError> {
    let gzip = bytes.starts_with(&[0x1f, 0x8b]);
    let tar = bytes.len() >= 262 && &bytes[257..262] == b"ustar";
    if !gzip && !tar {
        let lower = name.to_ascii_lowercase();
        return Err(
            if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") || lower.ends_with(".tar") {
                DataError::BadArchive {
                    file: name.to_string(),
                    reason: "it does not start with the gzip signature".into(),
                }
            } else {
                DataError::NotCifar {
                    file: name.to_string(),
                }
            },
        );
    }
    let reader: Box<dyn Read + '_> = if gzip {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let bad = |e: std::io::Error| DataError::BadArchive {
        file: name.to_string(),
        reason: e.to_string(),
    };
    let mut archive = tar::Archive::new(reader);
    let mut files = HashMap::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(bad)?.into_owned();
        let Some(base) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !is_cifar_file(base) {
            continue;
        }
        let base = base.to_string();
        // The header's size is a claim: refuse it past the largest CIFAR-10 file, and never
        // read more than that bound whatever the entry inflates to.
        let too_large = |size| DataError::TooLarge {
            file: format!("{name}: {base}"),
            size,
            limit: MAX_BATCH_FILE_BYTES,
        };
        if entry.size() > MAX_BATCH_FILE_BYTES {
            return Err(too_large(entry.size()));
        }
        let mut data = Vec::with_capacity(entry.size() as usize);
        (&mut entry)
            .take(MAX_BATCH_FILE_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(bad)?;
        if data.len() as u64 > MAX_BATCH_FILE_BYTES {
            return Err(too_large(data.len() as u64));
        }
        files.insert(base, data);
    }
    Ok(files)
}

/// Reads the training batches, the test batch and the class names from `src`.
fn load_source(src: &Source) -> Result<Cifar10, DataError> {
    let layout = src
        .layout()
        .ok_or_else(|| DataError::NoBatches { path: src.location() })?;
    let train_names = src.train_batches(layout);
    if !src.has(layout.test_name()) {
        return Err(DataError::MissingBatch {
            path: src.location(),
            found: train_names.join(", "),
            missing: layout.test_name().to_string(),
        });
    }
    let class_names = class_names(src, layout)?;
    let parse = |file: &str| -> Result<Dataset, DataError> {
        let bytes = src.read(file)?;
        let label = src.label(file);
        let (images, labels) = match layout {
            Layout::Binary => parse_binary_batch(&label, &bytes)?,
            Layout::Python => parse_python_batch(&label, &bytes)?,
        };
        Ok(Dataset::new(images, labels, class_names.clone()))
    };
    let mut train = Dataset {
        class_names: class_names.clone(),
        ..Dataset::default()
    };
    for name in &train_names {
        train.append(&parse(name)?);
    }
    let test = parse(layout.test_name())?;
    log::info!(
        "loaded CIFAR-10 ({:?} layout) from {}: {} training and {} test images",
        layout,
        src.location(),
        train.len(),
        test.len()
    );
    Ok(Cifar10 { train, test })
}

/// The class names from the meta file, or CIFAR-10's own when it is absent or does not
/// list 10 names.
fn class_names(src: &Source, layout: Layout) -> Result<Vec<String>, DataError> {
    let standard = || CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
    let file = layout.meta_name();
    if !src.has(file) {
        return Ok(standard());
    }
    let bytes = src.read(file)?;
    let names = match layout {
        Layout::Binary => Some(
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect::<Vec<_>>(),
        ),
        Layout::Python => pickle::parse(&bytes).ok().and_then(|p| {
            let list = p.dict_get(p.root, "label_names")?;
            p.string_list(list)
        }),
    };
    match names {
        Some(n) if n.len() == NUM_CLASSES => Ok(n),
        _ => {
            log::warn!(
                "{} does not list {NUM_CLASSES} class names; using CIFAR-10's",
                src.label(file)
            );
            Ok(standard())
        }
    }
}

/// One binary batch: records of 1 label byte + 3,072 pixel bytes → (N×3072 images, N labels).
/// `file` names the file in errors.
pub fn parse_binary_batch(file: &str, bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    if bytes.is_empty() {
        return Err(DataError::Empty {
            file: file.to_string(),
        });
    }
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        return Err(DataError::NotWholeRecords {
            file: file.to_string(),
            len: thousands(bytes.len()),
        });
    }
    let n = bytes.len() / RECORD_BYTES;
    let mut images = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for (index, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let label = record[0];
        if label as usize >= NUM_CLASSES {
            return Err(DataError::BadLabel {
                file: file.to_string(),
                index,
                label: label.into(),
            });
        }
        labels.push(label);
        images.extend_from_slice(&record[1..]);
    }
    Ok((images, labels))
}

/// One python batch: a pickled dict with `data` (numpy uint8 [N, 3072]) and `labels` (N ints)
/// → (N×3072 images, N labels). `file` names the file in errors.
pub fn parse_python_batch(file: &str, bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let bad = |reason: String| DataError::BadPickle {
        file: file.to_string(),
        reason,
    };
    if bytes.is_empty() {
        return Err(DataError::Empty {
            file: file.to_string(),
        });
    }
    let p = pickle::parse(bytes).map_err(bad)?;
    if !matches!(p.get(p.root), Value::Dict(_)) {
        return Err(bad("the pickle holds no dict".into()));
    }
    let data = p
        .dict_get(p.root, "data")
        .ok_or_else(|| bad("the dict has no 'data' entry".into()))?;
    let (shape, pixels) = p.ndarray_u8(data).map_err(|e| bad(format!("its 'data': {e}")))?;
    let n = shape.first().copied().unwrap_or(0);
    let image_bytes = shape[1..].iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if shape.len() < 2 || image_bytes != Some(IMAGE_BYTES) {
        return Err(bad(format!(
            "its 'data' array has shape {shape:?}, not [N, 3072]"
        )));
    }
    let labels_id = p
        .dict_get(p.root, "labels")
        .ok_or_else(|| bad("the dict has no 'labels' entry".into()))?;
    let raw = p
        .int_list(labels_id)
        .map_err(|e| bad(format!("its 'labels': {e}")))?;
    if raw.len() != n {
        return Err(bad(format!("it has {} labels for {} images", raw.len(), n)));
    }
    let mut labels = Vec::with_capacity(n);
    for (index, &label) in raw.iter().enumerate() {
        if !(0..NUM_CLASSES as i64).contains(&label) {
            return Err(DataError::BadLabel {
                file: file.to_string(),
                index,
                label,
            });
        }
        labels.push(label as u8);
    }
    Ok((pixels.to_vec(), labels))
}
