//! Downloads are streamed to disk and kept only when their MD5 matches (against a local
//! HTTP server; the real archive's server is not needed).

use std::io::{Read, Write};
use std::net::TcpListener;

use resnet_wgpu::download::{DownloadError, download_checked};

/// Serves `body` to each of `requests` connections, then stops.
fn serve(body: Vec<u8>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/cifar.tar.gz", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        }
    });
    url
}

#[test]
fn a_download_with_the_published_md5_is_kept_and_reported_as_it_goes() {
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    // Computed independently: hashlib.md5(bytes(i % 253 for i in range(300000))).
    let md5 = "94c8ba3e96f3d4e1e37bef89a07319b0";
    let url = serve(body.clone(), 1);
    let dir = std::env::temp_dir().join(format!("resnet-wgpu-download-{}", std::process::id()));
    let mut reports = Vec::new();
    let result = download_checked(&url, md5, &dir, "data.tar.gz", |done, total| {
        reports.push((done, total))
    });
    match result {
        Ok(path) => {
            assert_eq!(std::fs::read(&path).unwrap(), body);
            assert_eq!(
                reports.last(),
                Some(&(body.len() as u64, Some(body.len() as u64)))
            );
            // A second call finds the checked file and does not download again.
            download_checked(&url, md5, &dir, "data.tar.gz", |_, _| panic!("downloaded twice")).unwrap();
        }
        Err(DownloadError::Checksum { found, .. }) => {
            panic!("the test's MD5 is wrong: the body's is {found}")
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_damaged_download_is_deleted_with_a_clear_error() {
    let url = serve(b"half an archive".to_vec(), 1);
    let dir = std::env::temp_dir().join(format!("resnet-wgpu-damaged-{}", std::process::id()));
    let e = download_checked(
        &url,
        "c58f30108f718f92721af3b95e74349a",
        &dir,
        "cifar.tar.gz",
        |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(e, DownloadError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("damaged"), "{e}");
    assert!(!dir.join("cifar.tar.gz").exists() && !dir.join("cifar.tar.gz.partial").exists());
}
