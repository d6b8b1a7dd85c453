//! Workload for the live benchmark: an open/close storm or an exec storm.
//!
//! storm open N DIR   N times: open DIR/storm-<pid>.dat (create), write 64 bytes, close
//! storm tree N DIR   N times: open one of 1000 files of 4 KiB in DIR/tree-<pid>/, read
//!                    it to the end, close (what `grep -r` does); the files are made first
//! storm exec N       N times: fork and exec /bin/true, wait for it
//! Prints the elapsed seconds of the loop on stdout.

use std::ffi::CString;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: storm open N DIR | storm tree N DIR | storm exec N");
        std::process::exit(2)
    };
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or_else(|| usage());
    // The tree workload's files, made before the clock starts.
    let tree = (args.get(1).map(String::as_str) == Some("tree")).then(|| {
        let dir = format!("{}/tree-{}", args.get(3).unwrap_or_else(|| usage()), std::process::id());
        std::fs::create_dir_all(&dir).expect("create the tree directory");
        let files: Vec<CString> = (0..1000)
            .map(|i| {
                let p = format!("{dir}/f{i:04}");
                std::fs::write(&p, [b'x'; 4096]).expect("write a tree file");
                CString::new(p).expect("no NUL in path")
            })
            .collect();
        (dir, files)
    });
    let t0 = Instant::now();
    match args.get(1).map(String::as_str) {
        Some("open") => {
            let dir = args.get(3).unwrap_or_else(|| usage());
            let path = CString::new(format!("{dir}/storm-{}.dat", std::process::id())).expect("no NUL in path");
            let buf = [7u8; 64];
            for _ in 0..n {
                // SAFETY: valid NUL-terminated path and buffer; the fd is closed below.
                unsafe {
                    let fd = libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o600);
                    if fd < 0 {
                        eprintln!("storm: open: {}", std::io::Error::last_os_error());
                        std::process::exit(1);
                    }
                    libc::write(fd, buf.as_ptr().cast(), buf.len());
                    libc::close(fd);
                }
            }
            let _ = std::fs::remove_file(path.to_str().unwrap_or_default());
        }
        Some("tree") => {
            let (dir, files) = tree.as_ref().expect("made above");
            let mut buf = [0u8; 8192];
            for i in 0..n as usize {
                // SAFETY: valid NUL-terminated path and buffer; the fd is closed below.
                unsafe {
                    let fd = libc::open(files[i % files.len()].as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        eprintln!("storm: open: {}", std::io::Error::last_os_error());
                        std::process::exit(1);
                    }
                    while libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) > 0 {}
                    libc::close(fd);
                }
            }
            let elapsed = t0.elapsed();
            let _ = std::fs::remove_dir_all(dir);
            println!("{:.6}", elapsed.as_secs_f64());
            return;
        }
        Some("exec") => {
            for _ in 0..n {
                let st = std::process::Command::new("/bin/true").status().expect("exec /bin/true");
                assert!(st.success());
            }
        }
        _ => usage(),
    }
    println!("{:.6}", t0.elapsed().as_secs_f64());
}
