//! Workload for the live benchmark: an open/close storm or an exec storm.
//!
//! storm open N DIR   N times: open DIR/storm-<pid>.dat (create), write 64 bytes, close
//! storm paced RATE SECS DIR   like open, at RATE iterations a second for SECS seconds
//!                    (paced every millisecond; behind, it catches up at full speed); prints
//!                    the iterations done and the elapsed seconds
//! storm tree N DIR   N times: open one of 1000 files of 4 KiB in DIR/tree-<pid>/, read
//!                    it to the end, close (what `grep -r` does); the files are made first
//! storm exec N       N times: fork and exec /bin/true, wait for it
//! storm tcp N        N short TCP connections on loopback: connect, send 64 bytes, read
//!                    the 64-byte answer, close (a thread of this process accepts)
//! storm bulk N       one TCP connection on loopback carrying N MiB one way
//! storm dns N PORT   N DNS queries (A, a name in .test) over UDP to 127.0.0.1:PORT, each
//!                    waiting for its response
//! Prints the elapsed seconds of the loop on stdout.

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Instant;

/// A loopback server thread answering each connection's 64 bytes with 64 bytes.
fn echo_server() -> std::net::SocketAddr {
    let ls = TcpListener::bind("127.0.0.1:0").expect("listen on loopback");
    let addr = ls.local_addr().expect("bound");
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        for c in ls.incoming() {
            let Ok(mut c) = c else { continue };
            if c.read_exact(&mut buf).is_ok() {
                let _ = c.write_all(&buf);
            }
        }
    });
    addr
}

/// A loopback server thread reading each connection to its end.
fn sink_server() -> std::net::SocketAddr {
    let ls = TcpListener::bind("127.0.0.1:0").expect("listen on loopback");
    let addr = ls.local_addr().expect("bound");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        for c in ls.incoming() {
            let Ok(mut c) = c else { continue };
            while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    addr
}

/// A DNS query for `name`, type A, class IN, recursion desired.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// One iteration of the open storm: open `path` (create), write `buf`, close.
fn open_write_close(path: &CString, buf: &[u8]) {
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!(
            "usage: storm open N DIR | storm paced RATE SECS DIR | storm tree N DIR | storm exec N | storm tcp N | storm bulk N | storm dns N PORT"
        );
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
                open_write_close(&path, &buf);
            }
            let _ = std::fs::remove_file(path.to_str().unwrap_or_default());
        }
        Some("paced") => {
            let secs: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or_else(|| usage());
            let dir = args.get(4).unwrap_or_else(|| usage());
            let path = CString::new(format!("{dir}/storm-{}.dat", std::process::id())).expect("no NUL in path");
            let buf = [7u8; 64];
            let mut done = 0u64;
            loop {
                let t = t0.elapsed().as_secs_f64();
                if t >= secs {
                    break;
                }
                let due = (n as f64 * t) as u64;
                while done < due {
                    open_write_close(&path, &buf);
                    done += 1;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let _ = std::fs::remove_file(path.to_str().unwrap_or_default());
            println!("{done} {:.6}", t0.elapsed().as_secs_f64());
            return;
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
        Some("tcp") => {
            let addr = echo_server();
            let t0 = Instant::now();
            let mut buf = [9u8; 64];
            for _ in 0..n {
                let mut c = TcpStream::connect(addr).expect("connect on loopback");
                c.write_all(&buf).expect("send 64 bytes");
                c.read_exact(&mut buf).expect("read 64 bytes");
            }
            println!("{:.6}", t0.elapsed().as_secs_f64());
            return;
        }
        Some("bulk") => {
            let addr = sink_server();
            let t0 = Instant::now();
            let mut c = TcpStream::connect(addr).expect("connect on loopback");
            let buf = vec![5u8; 1 << 20];
            for _ in 0..n {
                c.write_all(&buf).expect("send 1 MiB");
            }
            c.shutdown(std::net::Shutdown::Write).expect("shutdown");
            let _ = c.read(&mut [0u8; 1]);
            println!("{:.6}", t0.elapsed().as_secs_f64());
            return;
        }
        Some("dns") => {
            let port: u16 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or_else(|| usage());
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.connect(("127.0.0.1", port)).expect("connect");
            s.set_read_timeout(Some(std::time::Duration::from_secs(2))).expect("timeout");
            let mut buf = [0u8; 512];
            let t0 = Instant::now();
            for i in 0..n {
                let q = dns_query(i as u16, if i % 2 == 0 { "alpha.test" } else { "beta.test" });
                s.send(&q).expect("send a query");
                let got = s.recv(&mut buf).expect("a response within 2 s");
                assert!(got >= 12 && buf[..2] == q[..2], "the response to query {i}");
            }
            println!("{:.6}", t0.elapsed().as_secs_f64());
            return;
        }
        _ => usage(),
    }
    println!("{:.6}", t0.elapsed().as_secs_f64());
}
