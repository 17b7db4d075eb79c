// SPDX-License-Identifier: MIT OR Apache-2.0
//! A TCP fault proxy for tests: clients connect to the proxy, which forwards to a Redis server
//! on loopback and can drop, delay or cut the traffic on command.
//!
//! - `blackhole_up` / `blackhole_down`: bytes from the client (commands) or from the server
//!   (replies) are read and thrown away, so the other side sees silence, not an error.
//! - `delay_down`: every chunk of replies is held back this long before it is forwarded.
//! - `reset_all`: every open connection is shut down at once (clients see a reset or EOF).
//!
//! Each connection runs two pump threads; they end when either side closes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Default)]
struct Faults {
    blackhole_up: AtomicBool,
    blackhole_down: AtomicBool,
    delay_down_ms: AtomicU64,
    stopped: AtomicBool,
}

/// A running proxy in front of one upstream port.
pub struct Proxy {
    addr: SocketAddr,
    faults: Arc<Faults>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port in front of `127.0.0.1:<upstream_port>`.
    pub fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let faults = Arc::new(Faults::default());
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (f, c) = (faults.clone(), conns.clone());
        thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(listener, upstream_port, f, c))
            .expect("spawn proxy");
        Proxy {
            addr,
            faults,
            conns,
        }
    }

    /// `redis://127.0.0.1:<proxy port>`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Drops (or stops dropping) everything the clients send.
    pub fn blackhole_up(&self, on: bool) {
        self.faults.blackhole_up.store(on, Ordering::SeqCst);
    }

    /// Drops (or stops dropping) everything the server answers.
    pub fn blackhole_down(&self, on: bool) {
        self.faults.blackhole_down.store(on, Ordering::SeqCst);
    }

    /// Holds every chunk of replies back by `delay` (zero: no delay).
    pub fn delay_down(&self, delay: Duration) {
        self.faults
            .delay_down_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Cuts every open connection (both directions).
    pub fn reset_all(&self) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        for c in conns.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.faults.stopped.store(true, Ordering::SeqCst);
        self.reset_all();
        // wake the accept loop so it sees `stopped`
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream_port: u16,
    faults: Arc<Faults>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
) {
    for client in listener.incoming() {
        if faults.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        {
            let mut list = conns.lock().unwrap_or_else(|p| p.into_inner());
            list.retain(|c| c.peer_addr().is_ok());
            for s in [&client, &server] {
                if let Ok(c) = s.try_clone() {
                    list.push(c);
                }
            }
        }
        let (c2, s2) = match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => (c, s),
            _ => continue,
        };
        let up = faults.clone();
        let down = faults.clone();
        let _ = thread::Builder::new()
            .name("proxy-up".into())
            .spawn(move || pump(client, server, &up, Direction::Up));
        let _ = thread::Builder::new()
            .name("proxy-down".into())
            .spawn(move || pump(s2, c2, &down, Direction::Down));
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Up,
    Down,
}

fn pump(mut from: TcpStream, mut to: TcpStream, faults: &Faults, dir: Direction) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (dropped, delay_ms) = match dir {
            Direction::Up => (faults.blackhole_up.load(Ordering::SeqCst), 0),
            Direction::Down => (
                faults.blackhole_down.load(Ordering::SeqCst),
                faults.delay_down_ms.load(Ordering::SeqCst),
            ),
        };
        if dropped {
            continue;
        }
        if delay_ms > 0 {
            // the fault itself: replies reach the client this much later
            thread::sleep(Duration::from_millis(delay_ms));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
