//! Files such as a stranger may send, each built to make a careless reader allocate or run
//! without bound: what every reader must refuse quickly, from the header alone.

use std::io::Write;

/// A `.tar.gz` of a few hundred bytes whose tar header claims a 1 TiB `data_batch_1`.
pub fn archive_claiming_a_terabyte() -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_path("cifar-10-batches-bin/data_batch_1.bin").unwrap();
    header.set_size(1 << 40);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(header.as_bytes()).unwrap();
    gz.write_all(&[0u8; 1024]).unwrap();
    gz.finish().unwrap()
}

/// A 50 KB `.tar.gz` whose one entry (truthfully) inflates to 48 MiB of zeros, more than any
/// CIFAR-10 file.
pub fn archive_that_inflates_past_any_cifar_file() -> Vec<u8> {
    let zeros = vec![0u8; 48 << 20];
    let mut header = tar::Header::new_gnu();
    header.set_size(zeros.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut builder = tar::Builder::new(gz);
    builder
        .append_data(&mut header, "cifar-10-batches-bin/data_batch_1.bin", &zeros[..])
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// `checkpoint` with `from` replaced by `to` in its JSON header (the safetensors length
/// prefix adjusted).
pub fn with_header_edited(checkpoint: &[u8], from: &str, to: &str) -> Vec<u8> {
    let len = u64::from_le_bytes(checkpoint[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&checkpoint[8..8 + len]).unwrap();
    assert!(header.contains(from), "the header has no {from:?}");
    let edited = header.replacen(from, to, 1);
    let mut out = (edited.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(edited.as_bytes());
    out.extend_from_slice(&checkpoint[8 + len..]);
    out
}

/// `checkpoint` whose model configuration claims ten billion blocks in its first stage.
pub fn checkpoint_claiming_ten_billion_blocks(checkpoint: &[u8]) -> Vec<u8> {
    let len = u64::from_le_bytes(checkpoint[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&checkpoint[8..8 + len]).unwrap();
    let start = header
        .find("\\\"blocks\\\":[")
        .expect("the header names the blocks")
        + "\\\"blocks\\\":[".len();
    let first = &header[start..start + header[start..].find([',', ']']).unwrap()];
    let from = format!("\\\"blocks\\\":[{first}");
    with_header_edited(checkpoint, &from, "\\\"blocks\\\":[10000000000")
}

/// A checkpoint's bytes with its JSON header (the `resnet_wgpu` metadata entry) edited by
/// `edit`: a header that a damaged or hand-made file may carry.
pub fn checkpoint_with_header(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    use resnet_wgpu::train::checkpoint::HEADER_KEY;
    use serde_json::Value;
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut outer: Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let text = outer["__metadata__"][HEADER_KEY].as_str().unwrap();
    let mut header: Value = serde_json::from_str(text).unwrap();
    edit(&mut header);
    outer["__metadata__"][HEADER_KEY] = Value::String(header.to_string());
    let mut json = outer.to_string();
    while !json.len().is_multiple_of(8) {
        json.push(' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(&bytes[8 + len..]);
    out
}
