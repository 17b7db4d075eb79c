// SPDX-License-Identifier: MIT OR Apache-2.0
//! The cross-language demo. Two stories, told by one orchestrator:
//!
//! - `sagas` (`make demo`): saga workers in Rust, Python and Node run an order, payment and
//!   inventory mix on the built-in saga repository, their steps contending for shared locks;
//!   one saga stalls and the monitor retries, then compensates it; two sagas deadlock across
//!   languages and the waiters break it; two `txcoord monitor` sidecars elect a leader, the
//!   leader is killed and the other takes over. See [`sagas`].
//! - `locks` (`make demo-locks`): Rust, Python and Node contend for one lock, with handoffs,
//!   fencing tokens and a lost lock. See [`locks`].
//!
//! The parts they share: event lines ([`event`]), the hub that collects and prints them in
//! time order ([`hub`]), child processes ([`process`]) and the summaries' tables ([`table`]).

pub mod event;
pub mod hub;
pub mod locks;
pub mod process;
pub mod sagas;
pub mod table;

use txcoord_testkit::RedisServer;

/// `$REDIS_URL`, or a throwaway redis-server on a free loopback port (kept while the second
/// value lives).
pub fn redis_url() -> (String, Option<RedisServer>) {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let server = RedisServer::start();
            (server.url(), Some(server))
        }
    }
}
