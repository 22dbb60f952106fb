//! The data layer, without a GPU: CIFAR-10 in both layouts (folders and .tar.gz), the real
//! digits set, the sample set, batch augmentation and image-file decoding.

use std::path::{Path, PathBuf};

use resnet_wgpu::data::{
    BatchOptions, BatchOrder, CIFAR10_CLASSES, Cifar10, DataError, Dataset, IMAGE_BYTES, RECORD_BYTES,
    decode_image, load_cifar10, load_cifar10_archive, load_cifar10_files, make_batch, sample_dataset,
};
use resnet_wgpu::rng::Rng;

mod common;
use common::digits_dir;

/// Written by numpy 2.4 + pickle (protocols 2 and 4): see `tests/fixtures/README.md`.
const PY_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cifar-10-batches-py");

// ---- helpers --------------------------------------------------------------------------------

/// A fresh, empty folder under the system temp dir, unique to this process and `name`.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("resnet-wgpu-data-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// `n` random images (N×3072 bytes) and labels, from `seed`.
fn random_set(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let images = (0..n * IMAGE_BYTES).map(|_| rng.below(256) as u8).collect();
    let labels = (0..n).map(|_| rng.below(10) as u8).collect();
    (images, labels)
}

/// The binary layout: records of 1 label byte + 3,072 pixel bytes.
fn binary_batch(images: &[u8], labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        out.push(l);
        out.extend_from_slice(&images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]);
    }
    out
}

/// A CIFAR python batch as Python 2's cPickle wrote CIFAR-10 (protocol 2, byte-string keys,
/// the numpy array's data as a BINSTRING, labels as BININT1s appended to a list, memo puts
/// and gets): `{"data": uint8 [N, 3072], "labels": [...], "batch_label": ..., "filenames":
/// [...]}`. `claimed_rows` is the array's first dimension (normally N).
fn py2_batch(images: &[u8], labels: &[i64], claimed_rows: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x02, b'}', b'q', 1, b'('];
    let short_str = |p: &mut Vec<u8>, s: &[u8]| {
        p.push(b'U');
        p.push(s.len() as u8);
        p.extend_from_slice(s);
    };
    // "data": _reconstruct(ndarray, (0,), b"b") BUILD (1, (N, 3072), dtype, False, raw)
    short_str(&mut p, b"data");
    p.extend_from_slice(b"q\x02cnumpy.core.multiarray\n_reconstruct\nq\x03cnumpy\nndarray\nq\x04");
    p.extend_from_slice(b"K\x00\x85q\x05");
    short_str(&mut p, b"b");
    p.extend_from_slice(b"\x87Rq\x06(K\x01J");
    p.extend_from_slice(&claimed_rows.to_le_bytes());
    p.extend_from_slice(b"M\x00\x0c\x86cnumpy\ndtype\nq\x07");
    short_str(&mut p, b"u1");
    p.extend_from_slice(b"K\x00K\x01\x87Rq\x08(K\x03");
    short_str(&mut p, b"|");
    p.extend_from_slice(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T");
    p.extend_from_slice(&(images.len() as u32).to_le_bytes());
    p.extend_from_slice(images);
    p.extend_from_slice(b"tbr\x00\x01\x00\x00");
    // "labels": [...] (put in the memo before it is filled, as cPickle does)
    short_str(&mut p, b"labels");
    p.extend_from_slice(b"]q\x09(");
    for &l in labels {
        if (0..256).contains(&l) {
            p.extend_from_slice(&[b'K', l as u8]);
        } else {
            p.push(b'J');
            p.extend_from_slice(&(l as i32).to_le_bytes());
        }
    }
    p.push(b'e');
    short_str(&mut p, b"batch_label");
    short_str(&mut p, b"training batch 1 of 1");
    short_str(&mut p, b"filenames");
    p.extend_from_slice(b"](");
    for i in 0..labels.len() {
        short_str(&mut p, format!("img_{i}.png").as_bytes());
    }
    p.extend_from_slice(b"e");
    // A key whose value is fetched back from the memo (the dtype object), like cPickle's
    // shared references.
    short_str(&mut p, b"dtype_again");
    p.extend_from_slice(b"h\x08");
    p.extend_from_slice(b"u.");
    p
}

/// A .tar.gz holding `entries` (path, bytes), built in memory.
fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (path, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Pixel `k` of image `i` in the python fixture (see `tests/fixtures/README.md`).
fn fixture_pixel(i: usize, k: usize) -> u8 {
    ((i * 37 + k * 11 + (k / 1024) * 5) % 256) as u8
}

fn check_fixture(c: &Cifar10) {
    assert_eq!(c.train.labels, vec![0, 9, 3, 5, 1]);
    assert_eq!(c.test.labels, vec![7, 2]);
    for i in 0..5 {
        let img = c.train.image(i);
        assert!(
            (0..IMAGE_BYTES).all(|k| img[k] == fixture_pixel(i, k)),
            "image {i}"
        );
    }
    for i in 0..2 {
        let img = c.test.image(i);
        assert!((0..IMAGE_BYTES).all(|k| img[k] == fixture_pixel(i + 5, k)));
    }
    assert_eq!(c.train.class_names, CIFAR10_CLASSES);
}

fn err_text(r: Result<Cifar10, DataError>) -> String {
    match r {
        Ok(c) => panic!("expected an error, loaded {} + {}", c.train.len(), c.test.len()),
        Err(e) => e.to_string(),
    }
}

// ---- binary layout --------------------------------------------------------------------------

/// Writes a small binary-layout set into `dir`: batches of 3 and 2 images, a test batch of 2.
fn write_binary_set(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let (a, la) = random_set(3, 1);
    let (b, lb) = random_set(2, 2);
    let (t, lt) = random_set(2, 3);
    write(&dir.join("data_batch_1.bin"), &binary_batch(&a, &la));
    write(&dir.join("data_batch_2.bin"), &binary_batch(&b, &lb));
    write(&dir.join("test_batch.bin"), &binary_batch(&t, &lt));
    let names = "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n\n";
    write(&dir.join("batches.meta.txt"), names.as_bytes());
    ([a, b].concat(), [la, lb].concat(), t, lt)
}

#[test]
fn binary_folder_loads_exactly() {
    let root = temp_dir("bin-folder");
    let dir = root.join("cifar-10-batches-bin");
    let (images, labels, test_images, test_labels) = write_binary_set(&dir);
    // The folder itself, its parent, and a path to one of its batches.
    for path in [dir.clone(), root.clone(), dir.join("test_batch.bin")] {
        let c = load_cifar10(&path).unwrap();
        assert_eq!(c.train.len(), 5);
        assert_eq!(c.train.images, images);
        assert_eq!(c.train.labels, labels);
        assert_eq!(c.test.images, test_images);
        assert_eq!(c.test.labels, test_labels);
        assert_eq!(c.train.class_names[0], "zero");
        assert_eq!(c.test.class_names[9], "nine");
    }
    // Loose files, as dropped in a browser.
    let files = ["data_batch_1.bin", "data_batch_2.bin", "test_batch.bin"]
        .iter()
        .map(|n| (format!("x/{n}"), std::fs::read(dir.join(n)).unwrap()))
        .collect();
    let c = load_cifar10_files(files).unwrap();
    assert_eq!(c.train.images, images);
    assert_eq!(
        c.train.class_names, CIFAR10_CLASSES,
        "no meta file: standard names"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn binary_tar_gz_loads_exactly() {
    let (a, la) = random_set(4, 10);
    let (t, lt) = random_set(3, 11);
    let archive = tar_gz(&[
        ("cifar-10-batches-bin/readme.html", b"<html></html>"),
        ("cifar-10-batches-bin/data_batch_1.bin", &binary_batch(&a, &la)),
        ("cifar-10-batches-bin/test_batch.bin", &binary_batch(&t, &lt)),
        (
            "cifar-10-batches-bin/batches.meta.txt",
            b"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n",
        ),
    ]);
    let c = load_cifar10_archive("cifar-10-binary.tar.gz", &archive).unwrap();
    assert_eq!(
        (c.train.images.as_slice(), c.train.labels.as_slice()),
        (&a[..], &la[..])
    );
    assert_eq!(
        (c.test.images.as_slice(), c.test.labels.as_slice()),
        (&t[..], &lt[..])
    );
    assert_eq!(c.train.class_names[1], "b");

    // From disk: the archive's path, and a folder holding it.
    let root = temp_dir("bin-targz");
    write(&root.join("cifar-10-binary.tar.gz"), &archive);
    assert_eq!(load_cifar10(root.join("cifar-10-binary.tar.gz")).unwrap(), c);
    assert_eq!(load_cifar10(&root).unwrap(), c);
    // One dropped archive.
    let dropped = load_cifar10_files(vec![("cifar-10-binary.tar.gz".into(), archive)]);
    assert_eq!(dropped.unwrap(), c);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn binary_rejects_bad_files() {
    let root = temp_dir("bin-bad");
    let (img, lab) = random_set(2, 5);
    let good = binary_batch(&img, &lab);
    write(&root.join("test_batch.bin"), &good);

    // Truncated: one byte short of two records.
    write(&root.join("data_batch_1.bin"), &good[..2 * RECORD_BYTES - 1]);
    let msg = err_text(load_cifar10(&root));
    assert!(msg.contains("data_batch_1.bin holds 6,145 bytes"), "{msg}");
    assert!(
        msg.contains("3,073-byte records") && msg.contains("cifar.html"),
        "{msg}"
    );

    // A label of 10.
    let mut bad = good.clone();
    bad[RECORD_BYTES] = 10;
    write(&root.join("data_batch_1.bin"), &bad);
    let msg = err_text(load_cifar10(&root));
    assert!(msg.contains("data_batch_1.bin: image 1 has label 10"), "{msg}");

    // An empty file.
    write(&root.join("data_batch_1.bin"), b"");
    assert!(err_text(load_cifar10(&root)).contains("is empty"));

    // No test batch.
    write(&root.join("data_batch_1.bin"), &good);
    std::fs::remove_file(root.join("test_batch.bin")).unwrap();
    let msg = err_text(load_cifar10(&root));
    assert!(msg.contains("no test_batch.bin"), "{msg}");

    // An empty folder, and one that does not exist.
    let empty = temp_dir("bin-empty");
    let msg = err_text(load_cifar10(&empty));
    assert!(msg.contains("holds no CIFAR-10 data"), "{msg}");
    assert!(err_text(load_cifar10(empty.join("nope"))).contains("cannot read"));
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&empty);
}

// ---- archives that are not CIFAR ------------------------------------------------------------

#[test]
fn rejects_wrong_archives_and_random_files() {
    let root = temp_dir("wrong");
    let mut rng = Rng::new(99);
    let noise: Vec<u8> = (0..10_000).map(|_| rng.below(256) as u8).collect();

    // Random bytes under an ordinary name, and under an archive's name.
    write(&root.join("random.dat"), &noise);
    let msg = err_text(load_cifar10(root.join("random.dat")));
    assert!(msg.contains("random.dat is not CIFAR-10 data"), "{msg}");
    let msg = err_text(load_cifar10_archive("cifar-10-python.tar.gz", &noise));
    assert!(
        msg.contains("cifar-10-python.tar.gz is not a readable .tar.gz"),
        "{msg}"
    );

    // Gzip signature followed by garbage.
    let mut fake_gz = vec![0x1f, 0x8b];
    fake_gz.extend_from_slice(&noise);
    let msg = err_text(load_cifar10_archive("x.tar.gz", &fake_gz));
    assert!(msg.contains("x.tar.gz is not a readable .tar.gz"), "{msg}");

    // A real .tar.gz without CIFAR batches.
    let other = tar_gz(&[("photos/cat.jpg", &noise[..100]), ("README", b"hello")]);
    let msg = err_text(load_cifar10_archive("photos.tar.gz", &other));
    assert!(msg.contains("photos.tar.gz holds no CIFAR-10 data"), "{msg}");

    // A truncated CIFAR archive.
    let (a, la) = random_set(20, 1);
    let whole = tar_gz(&[
        ("cifar-10-batches-bin/data_batch_1.bin", &binary_batch(&a, &la)),
        ("cifar-10-batches-bin/test_batch.bin", &binary_batch(&a, &la)),
    ]);
    let msg = err_text(load_cifar10_archive("cut.tar.gz", &whole[..whole.len() / 2]));
    assert!(msg.contains("cut.tar.gz"), "{msg}");
    let _ = std::fs::remove_dir_all(&root);
}

// ---- python layout --------------------------------------------------------------------------

#[test]
fn python_fixture_from_numpy_loads_exactly() {
    // A folder written by numpy + pickle (protocol 2 and 4).
    check_fixture(&load_cifar10(PY_FIXTURE).unwrap());

    // The same files as a .tar.gz, as cifar-10-python.tar.gz is laid out.
    let names = ["data_batch_1", "data_batch_2", "test_batch", "batches.meta"];
    let contents: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(Path::new(PY_FIXTURE).join(n)).unwrap())
        .collect();
    let paths: Vec<String> = names.iter().map(|n| format!("cifar-10-batches-py/{n}")).collect();
    let entries: Vec<(&str, &[u8])> = paths
        .iter()
        .zip(&contents)
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let archive = tar_gz(&entries);
    check_fixture(&load_cifar10_archive("cifar-10-python.tar.gz", &archive).unwrap());
    let root = temp_dir("py-targz");
    write(&root.join("cifar-10-python.tar.gz"), &archive);
    check_fixture(&load_cifar10(&root).unwrap());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn python_py2_style_pickle_loads_exactly() {
    let root = temp_dir("py2");
    let dir = root.join("cifar-10-batches-py");
    let (a, la) = random_set(4, 20);
    let (t, lt) = random_set(3, 21);
    let wide = |l: &[u8]| l.iter().map(|&x| x as i64).collect::<Vec<_>>();
    write(&dir.join("data_batch_1"), &py2_batch(&a, &wide(&la), 4));
    write(&dir.join("test_batch"), &py2_batch(&t, &wide(&lt), 3));
    for path in [&dir, &root] {
        let c = load_cifar10(path).unwrap();
        assert_eq!(
            (c.train.images.as_slice(), c.train.labels.as_slice()),
            (&a[..], &la[..])
        );
        assert_eq!(
            (c.test.images.as_slice(), c.test.labels.as_slice()),
            (&t[..], &lt[..])
        );
        assert_eq!(c.train.class_names, CIFAR10_CLASSES);
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn python_rejects_bad_pickles() {
    let root = temp_dir("py-bad");
    let (t, lt) = random_set(2, 30);
    let wide: Vec<i64> = lt.iter().map(|&x| x as i64).collect();
    write(&root.join("test_batch"), &py2_batch(&t, &wide, 2));
    let batch = root.join("data_batch_1");

    // A label of 10.
    write(&batch, &py2_batch(&t, &[3, 10], 2));
    let msg = err_text(load_cifar10(&root));
    assert!(msg.contains("data_batch_1: image 1 has label 10"), "{msg}");

    // A negative label.
    write(&batch, &py2_batch(&t, &[-1, 3], 2));
    assert!(err_text(load_cifar10(&root)).contains("has label -1"));

    // The array claims 3 rows but holds 2.
    write(&batch, &py2_batch(&t, &wide, 3));
    let msg = err_text(load_cifar10(&root));
    assert!(
        msg.contains("data_batch_1 is not a CIFAR-10 python batch"),
        "{msg}"
    );
    assert!(msg.contains("holds 6144 bytes, not 9216"), "{msg}");

    // Truncated: the numpy fixture cut in half.
    let whole = std::fs::read(Path::new(PY_FIXTURE).join("data_batch_1")).unwrap();
    write(&batch, &whole[..whole.len() / 2]);
    let msg = err_text(load_cifar10(&root));
    assert!(msg.contains("data_batch_1") && msg.contains("truncated"), "{msg}");

    // A pickle that would run code: INST os.system("echo hi") is refused, not run.
    write(&batch, b"\x80\x02(U\x07echo hiios\nsystem\n.");
    let msg = err_text(load_cifar10(&root));
    assert!(
        msg.contains("data_batch_1") && msg.contains("INST (0x69)"),
        "{msg}"
    );

    // GLOBAL + REDUCE of os.system is only recorded, and then is not a numpy array.
    write(
        &batch,
        b"\x80\x02}(U\x04datacos\nsystem\nU\x07echo hi\x85RU\x06labels]u.",
    );
    let msg = err_text(load_cifar10(&root));
    assert!(msg.contains("os.system, not numpy's _reconstruct"), "{msg}");

    // Not a pickle at all.
    write(&batch, b"hello, world");
    let msg = err_text(load_cifar10(&root));
    assert!(msg.contains("does not start with a pickle PROTO"), "{msg}");
    let _ = std::fs::remove_dir_all(&root);
}

// ---- the real digits ------------------------------------------------------------------------

#[test]
fn digits_load_through_the_binary_loader() {
    let c = load_cifar10(digits_dir()).unwrap();
    assert_eq!(c.train.len(), 1_500);
    assert_eq!(c.test.len(), 297);
    assert_eq!(c.train.images.len(), 1_500 * IMAGE_BYTES);
    assert_eq!(
        c.train.class_names,
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    );
    for d in [&c.train, &c.test] {
        assert!(d.labels.iter().all(|&l| l < 10));
        assert!(d.class_counts().iter().all(|&n| n > 0), "{:?}", d.class_counts());
    }
    assert_eq!(c.train.class_counts().iter().sum::<usize>(), 1_500);
    // Grey: R, G and B planes are equal.
    let img = c.train.image(0);
    assert_eq!(img[..1024], img[1024..2048]);
    assert_eq!(img[..1024], img[2048..]);

    let (train, val) = c.train.split(300);
    assert_eq!((train.len(), val.len()), (1_200, 300));
    assert_eq!(val.image(0), c.train.image(1_200));
    assert_eq!(val.labels[..], c.train.labels[1_200..]);
    assert_eq!(train, c.train.subset(0..1_200));
}

// ---- the sample set -------------------------------------------------------------------------

#[test]
fn sample_dataset_is_deterministic_and_balanced() {
    let a = sample_dataset(1_000, 205, 7);
    assert_eq!(a, sample_dataset(1_000, 205, 7));
    assert_ne!(a.train.images, sample_dataset(1_000, 205, 8).train.images);
    // The test set does not depend on the training set's size.
    assert_eq!(a.test, sample_dataset(30, 205, 7).test);
    assert_eq!(a.train.len(), 1_000);
    assert_eq!(a.train.images.len(), 1_000 * IMAGE_BYTES);
    assert_eq!(a.train.class_counts(), [100; 10]);
    let counts = a.test.class_counts();
    assert!(counts.iter().all(|&n| n == 20 || n == 21), "{counts:?}");
    assert_eq!(a.train.class_names.len(), 10);
    // Shuffled, and the images are varied (no two the same).
    assert_ne!(&a.train.labels[..10], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let mut seen = std::collections::HashSet::new();
    assert!((0..a.train.len()).all(|i| seen.insert(a.train.image(i).to_vec())));
    // Every image uses a good part of the range (shapes in contrasting colours).
    for i in 0..50 {
        let img = a.train.image(i);
        let (lo, hi) = (img.iter().min().unwrap(), img.iter().max().unwrap());
        assert!(hi - lo > 60, "image {i}: range {lo}..{hi}");
    }
}

// ---- augmentation ---------------------------------------------------------------------------

/// A dataset of `n` images whose every pixel is 1..=255 (so that 0 marks padding).
fn nonzero_set(n: usize) -> Dataset {
    let (mut images, labels) = random_set(n, 40);
    for p in &mut images {
        *p = (*p).max(1);
    }
    Dataset::new(images, labels, CIFAR10_CLASSES.map(String::from).to_vec())
}

/// Source pixel (c, y, x) of `img`, or 0 outside the image.
fn at(img: &[u8], c: usize, y: isize, x: isize) -> u8 {
    if (0..32).contains(&y) && (0..32).contains(&x) {
        img[c * 1024 + y as usize * 32 + x as usize]
    } else {
        0
    }
}

#[test]
fn batch_scales_to_unit_range_without_augmentation() {
    let d = nonzero_set(5);
    let idx = [3, 0, 4];
    let b = make_batch(&d, &idx, BatchOptions::NONE, &mut Rng::new(1));
    assert_eq!(b.images.len(), 3 * 3 * 32 * 32);
    assert_eq!(b.labels, idx.map(|i| d.labels[i] as u32));
    for (j, &i) in idx.iter().enumerate() {
        for k in 0..IMAGE_BYTES {
            assert_eq!(b.images[j * IMAGE_BYTES + k], d.image(i)[k] as f32 / 255.0);
        }
    }
    let full = Dataset::new([0, 255].repeat(IMAGE_BYTES / 2), vec![1], vec![]);
    let b = make_batch(&full, &[0], BatchOptions::NONE, &mut Rng::new(1));
    assert_eq!((b.images[0], b.images[1]), (0.0, 1.0));
}

#[test]
fn hflip_mirrors_columns_exactly() {
    let d = nonzero_set(64);
    let idx: Vec<usize> = (0..64).collect();
    let opts = BatchOptions {
        hflip: true,
        crop_padding: None,
    };
    let b = make_batch(&d, &idx, opts, &mut Rng::new(3));
    assert_eq!(b, make_batch(&d, &idx, opts, &mut Rng::new(3)), "reproducible");
    let mut flipped = 0;
    for i in 0..64 {
        let src = d.image(i);
        let out = &b.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES];
        let px = |c: usize, y: usize, x: usize| out[c * 1024 + y * 32 + x];
        let same = (0..IMAGE_BYTES).all(|k| out[k] == src[k] as f32 / 255.0);
        let mirrored = (0..3).all(|c| {
            (0..32).all(|y| (0..32).all(|x| px(c, y, x) == src[c * 1024 + y * 32 + 31 - x] as f32 / 255.0))
        });
        assert!(same ^ mirrored, "image {i} is neither itself nor its mirror");
        flipped += mirrored as usize;
    }
    assert!((16..=48).contains(&flipped), "{flipped} of 64 flipped");
}

#[test]
fn random_crop_keeps_size_and_shifts_content() {
    let d = nonzero_set(32);
    let idx: Vec<usize> = (0..32).collect();
    let opts = BatchOptions {
        hflip: false,
        crop_padding: Some(4),
    };
    let b = make_batch(&d, &idx, opts, &mut Rng::new(5));
    assert_eq!(b.images.len(), 32 * IMAGE_BYTES);
    let mut shifts = std::collections::HashSet::new();
    for i in 0..32 {
        let src = d.image(i);
        let out: Vec<u8> = b.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
            .iter()
            .map(|&v| (v * 255.0).round() as u8)
            .collect();
        // Find the one shift (dy, dx) in [-4, 4]² that explains the output.
        let found: Vec<(isize, isize)> = (-4..=4)
            .flat_map(|dy| (-4..=4).map(move |dx| (dy, dx)))
            .filter(|&(dy, dx)| {
                (0..3).all(|c| {
                    (0..32).all(|y| {
                        (0..32).all(|x| {
                            out[c * 1024 + y * 32 + x] == at(src, c, y as isize + dy, x as isize + dx)
                        })
                    })
                })
            })
            .collect();
        assert_eq!(found.len(), 1, "image {i}: shifts {found:?}");
        shifts.insert(found[0]);
    }
    assert!(shifts.len() > 5, "too few distinct shifts: {shifts:?}");
    assert!(shifts.iter().any(|&(dy, dx)| dy != 0 || dx != 0));
}

#[test]
fn batch_order_is_a_seeded_permutation_per_epoch() {
    let order = BatchOrder::shuffled(42);
    let e0 = order.epoch(0, 1_000);
    let mut sorted = e0.clone();
    sorted.sort();
    assert_eq!(sorted, (0..1_000).collect::<Vec<_>>());
    assert_eq!(e0, BatchOrder::shuffled(42).epoch(0, 1_000));
    assert_ne!(e0, order.epoch(1, 1_000));
    assert_ne!(e0, BatchOrder::shuffled(43).epoch(0, 1_000));
    assert_eq!(BatchOrder::sequential().epoch(3, 5), vec![0, 1, 2, 3, 4]);
    assert_eq!(BatchOrder::batches(10, 4, false), vec![0..4, 4..8, 8..10]);
    assert_eq!(BatchOrder::batches(10, 4, true), vec![0..4, 4..8]);
    assert_eq!(BatchOrder::batches(8, 4, false), vec![0..4, 4..8]);
    assert_eq!(BatchOrder::batches(45_000, 128, false).len(), 352);
}

// ---- image files ----------------------------------------------------------------------------

fn png(img: image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn decodes_png_to_32x32_chw() {
    // 64×64: left half red, right half blue.
    let img = image::RgbImage::from_fn(64, 64, |x, _| {
        if x < 32 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    });
    let chw = decode_image("halves.png", &png(img.into())).unwrap();
    assert_eq!(chw.len(), IMAGE_BYTES);
    for y in 0..32 {
        for x in [0, 5, 14] {
            assert_eq!(
                [chw[y * 32 + x], chw[1024 + y * 32 + x], chw[2048 + y * 32 + x]],
                [255, 0, 0]
            );
        }
        for x in [17, 26, 31] {
            assert_eq!(
                [chw[y * 32 + x], chw[1024 + y * 32 + x], chw[2048 + y * 32 + x]],
                [0, 0, 255]
            );
        }
    }

    // Not square (96×40): the centre square is kept; a uniform colour stays that colour.
    let img = image::RgbImage::from_pixel(96, 40, image::Rgb([10, 200, 30]));
    let chw = decode_image("wide.png", &png(img.into())).unwrap();
    assert!(chw[..1024].iter().all(|&v| v == 10));
    assert!(chw[1024..2048].iter().all(|&v| v == 200));
    assert!(chw[2048..].iter().all(|&v| v == 30));

    // Fully transparent pixels become white.
    let img = image::RgbaImage::from_pixel(8, 8, image::Rgba([0, 0, 0, 0]));
    let chw = decode_image("clear.png", &png(img.into())).unwrap();
    assert!(chw.iter().all(|&v| v == 255));
}

#[test]
fn rejects_text_as_an_image() {
    let err = decode_image("notes.txt", b"this is just some text\n").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("notes.txt is not an image this program can read (PNG, JPEG, BMP, GIF, WebP): "),
        "{msg}"
    );
    // A truncated PNG.
    let img = image::RgbImage::from_pixel(16, 16, image::Rgb([1, 2, 3]));
    let bytes = png(img.into());
    assert!(decode_image("cut.png", &bytes[..bytes.len() / 2]).is_err());
}

/// A JPEG of 1.5 KB whose header claims 2848 × 31232 pixels (found by fuzzing: decoding it took
/// 17 s and 650 MB) is refused from its header at once; a real photo-sized picture is not.
#[test]
fn images_claiming_more_pixels_than_their_size_holds_are_refused_before_decoding() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/image");
    let bytes = std::fs::read(dir.join("slow-jpeg-2848x31232")).unwrap();
    let start = std::time::Instant::now();
    let msg = decode_image("tiny.jpg", &bytes).unwrap_err().to_string();
    assert!(start.elapsed().as_secs_f64() < 0.5, "took {:?}", start.elapsed());
    assert!(
        msg.starts_with("tiny.jpg is not an image") && msg.contains("2848×31232"),
        "{msg}"
    );
    // A 3000 × 2000 photo-like PNG (noise: it does not compress) decodes.
    let mut rng = 12345u32;
    let img = image::RgbImage::from_fn(3000, 2000, |_, _| {
        rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        image::Rgb([(rng >> 24) as u8, (rng >> 16) as u8, (rng >> 8) as u8])
    });
    let bytes = png(img.into());
    assert_eq!(decode_image("photo.png", &bytes).unwrap().len(), 3072);
    // A flat 4000 × 3000 picture, which compresses very well, still decodes.
    let flat = png(image::RgbImage::from_pixel(4000, 3000, image::Rgb([90, 120, 200])).into());
    assert_eq!(decode_image("flat.png", &flat).unwrap().len(), 3072);
}

#[test]
fn dataset_helpers() {
    let d = nonzero_set(10);
    let s = d.select(&[9, 2]);
    assert_eq!(s.image(0), d.image(9));
    assert_eq!(s.labels, vec![d.labels[9], d.labels[2]]);
    let (a, b) = d.split(0);
    assert_eq!((a.len(), b.len()), (10, 0));
    let rgb = resnet_wgpu::data::chw_to_rgb(d.image(0));
    assert_eq!(rgb[..3], [d.image(0)[0], d.image(0)[1024], d.image(0)[2048]]);
}

/// An archive whose tar header claims a 1 TiB `data_batch_1` (97 bytes on disk in the wild),
/// and one whose entry inflates to more than any CIFAR-10 file, are refused from the header
/// alone, before anything of that size is allocated or read, with a message that says what
/// is wrong.
#[test]
fn archive_entries_larger_than_any_cifar_file_are_refused_before_reading() {
    let lying = common::hostile::archive_claiming_a_terabyte();
    let start = std::time::Instant::now();
    let text = err_text(load_cifar10_archive("cifar-10-binary.tar.gz", &lying));
    assert!(
        text.contains("1099511627776 bytes") && text.contains("more than any CIFAR-10 file"),
        "{text}"
    );
    assert!(start.elapsed().as_secs() < 1, "took {:?}", start.elapsed());

    let bomb = common::hostile::archive_that_inflates_past_any_cifar_file();
    assert!(bomb.len() < 1 << 20);
    let start = std::time::Instant::now();
    let text = err_text(load_cifar10_archive("cifar-10-binary.tar.gz", &bomb));
    assert!(text.contains("more than any CIFAR-10 file"), "{text}");
    assert!(start.elapsed().as_secs() < 1, "took {:?}", start.elapsed());
}
